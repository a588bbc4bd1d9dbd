"""Command line: ``python -m lib demo|load|export|assign ...``, a thin wrapper over lib's functions."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .processes import share_cores

share_cores()  # before any OpenMP library loads: the loader shares two cores with its workers

from .descriptors import InputError  # noqa: E402


class LoadFailed(Exception):
    """A load that stopped on something other than its input; said in one line."""


def _demo(args):
    from . import demo
    from .progress import TerminalProgress

    if args.realistic:
        from . import realistic

        s = realistic.generate(args.dir, n_vehicles=args.vehicles, seed=args.seed,
                               dims=realistic.REAL_DIMS if args.real_dims else None)
        print(f"wrote {s['n_images']} images of {s['n_vehicles']} vehicles ({s['n_bursts']} bursts of near-copies, "
              f"{s['n_odd']} oddities each seen by one model, {s['n_broken']} broken rows) to {args.dir}")
        return
    prog = TerminalProgress()
    with prog.stage("render demo dataset") as advance:
        done = [0]

        def tick(d, total):
            if prog.bar is not None and prog.bar.total is None:
                prog.bar.total = total
            advance(d - done[0])
            done[0] = d

        summary = demo.generate(args.dir, n_vehicles=args.vehicles, seed=args.seed, progress=tick)
    print(f"wrote {summary['n_images']} images of {summary['n_vehicles']} vehicles "
          f"({summary['n_outliers']} planted outliers) to {args.dir} in {summary['seconds']:.0f} s")


def _combinations(given):
    """``--combine`` values: None when not given (the defaults), () for ``--combine none``."""
    if not given:
        return None
    return tuple(c for c in given if c.lower() != "none")


def _load(args):
    from . import algorithms, krange
    from .pipeline import LoadConfig, load
    from .progress import TerminalProgress

    # the k range first: alone, then against the number of images (only the CSV is read for it)
    krange.check_range(args.k_min, args.k_max)
    ks = krange.check_range(args.k_min, args.k_max, krange.count_rows(args.dir))
    try:
        algos = algorithms.parse(args.algorithms)
    except ValueError as e:
        raise InputError("--algorithms", str(e)) from None
    from . import metric

    try:
        metrics = metric.parse(args.metric)
    except ValueError as e:
        raise InputError("--metric", str(e)) from None
    cfg = LoadConfig(ks=ks, metrics=metrics, n_neighbors=args.neighbors,
                     random_state=args.seed, models=tuple(args.model or ()), n_jobs=args.jobs,
                     combinations=_combinations(args.combine), algorithms=algos,
                     map_worker={"auto": None, "on": True, "off": False}[args.map_worker], reuse_dir=args.reuse,
                     scheduler=args.scheduler, blocks_dir=args.blocks)
    if args.map_iters:
        cfg.map_iters = cfg.map_exaggeration_iters = args.map_iters
    prog = TerminalProgress()
    if args.status:
        from .firststart import StatusProgress

        prog = StatusProgress(args.status, prog)
    from .engine import open_engine

    try:  # the scheduler is reached before any data is read: a wrong address costs nothing
        with open_engine(cfg, args.db) as engine:
            report = load(args.dir, args.db, cfg, prog, engine)
    except Exception as e:
        if args.status:
            prog.failed(str(e) or type(e).__name__)
        if args.scheduler and type(e).__module__.startswith("distributed"):
            # a lost worker Dask gave up on, a dropped connection: one line, not the scheduler's traceback
            raise LoadFailed(f"the load on the Dask scheduler {args.scheduler} failed, nothing was published "
                             f"(the previous database is unchanged): {type(e).__name__}: {e}") from None
        raise
    except BaseException as e:
        if args.status:
            prog.failed(str(e) or type(e).__name__)
        raise
    if args.status:
        prog.finished()
    if args.report:
        import json

        Path(args.report).write_text(json.dumps(report, indent=1, default=str))
    print(f"built {report['db']} in {report['seconds']:.1f}s: {report['images']} images")
    for m, info in report["models"].items():
        print(f"  {m}: {info['dim']} dims -> PCA {info['pca_dim']}, k = {info['chosen_k']}"
              + (f", {info['nonfinite_rows']} rows had NaN/inf (set to column means)" if info["nonfinite_rows"] else ""))
    print("  cluster structure: " + ", ".join(f"{m} {s}" for m, s in report["structure"].items()))
    print("  most interpretable groups (1 = recommended): "
          + ", ".join(f"{r}. {m}" if r is not None else f"- {m}" for m, r in report["ranks"].items()))
    print("  finding the same vehicle (1 = recommended): "
          + ", ".join(f"{r}. {m}" for m, r in report["ranks_neighbours"].items()))
    if "dask" in report:
        d = report["dask"]
        print(f"  on Dask ({d['scheduler']}, {len(d['workers'])} workers): neighbour recall@10 "
              + ", ".join(f"{m} {r:.3f}" for m, r in d["recall_at_10"].items()))
        print("  workers' peak memory: " + ", ".join(f"{w['peak_rss_mb']:.0f} MiB" for w in d["workers"].values())
              + f"; sent by workers {sum(w['sent_bytes'] or 0 for w in d['workers'].values()) / 2**20:.0f} MiB, "
              f"of which to the loader {d['gathered_bytes'] / 2**20:.0f} MiB")
    bad = {k: v for k, v in report["image_status"].items() if k != "ok" and v}
    if bad:
        print("  images without thumbnail: " + ", ".join(f"{v} {k}" for k, v in bad.items()))


def _first_start(args):
    from .firststart import first_start, log_path
    from .progress import TerminalProgress

    done = first_start(args.dir, args.db, n_vehicles=args.vehicles, progress=TerminalProgress(),
                       background=not args.no_background)
    if done == "built":
        print(f"first look at {args.db}: KMeans on each model"
              + ("" if args.no_background else f"; the full load goes on in the background ({log_path(args.db)})"))
    elif done == "resumed":
        print(f"{args.db} is there; its full load had stopped and goes on again ({log_path(args.db)})")


def _export(args):
    from .export import export

    try:
        rows = export(args.db, args.out, args.reviews)
    except (ValueError, FileNotFoundError) as e:
        raise InputError(args.out if isinstance(e, ValueError) else args.db, str(e).split(": ", 1)[-1]) from None
    print(f"wrote {rows} rows (one per image and model) to {args.out}")


def _assign(args):
    from .assign import assign
    from .progress import TerminalProgress

    r = assign(args.dir, args.db, name=args.name, n_jobs=args.jobs, progress=TerminalProgress())
    print(f"batch {r['name']}: {r['images']} images assigned against build {r['build']} -> {r['path']}")
    for m, info in r["models"].items():
        print(f"  {m}: {info['novel']} novel, mean confidence {info['mean_confidence']:.2f}")
    if r["ignored"]:
        print("  ignored descriptor files (not in the database): " + ", ".join(r["ignored"]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write a synthetic dataset in the real layout")
    p.add_argument("dir")
    p.add_argument("--vehicles", type=int, default=600, help="vehicles (about 10 photos each); 40671 = full scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--realistic", action="store_true",
                   help="descriptors shaped like the real set (lib.realistic): re-ID-like, sparse CNN-like, "
                        "unbalanced classes, a model with no structure, bursts of near-copies, broken rows; "
                        "truth.csv says which; pictures are plain boxes")
    p.add_argument("--real-dims", action="store_true", help="with --realistic: the real models' dims (slower)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("load", help="build the database from a dataset folder")
    p.add_argument("dir")
    p.add_argument("--db", required=True, help="database path (a link to the newest complete build)")
    p.add_argument("--model", action="append", help="load only this model (repeatable)")
    p.add_argument("--combine", action="append", metavar="A+B",
                   help="also load this combination of models as a model of its own (repeatable); "
                        "default: vdc_type+vdc_color and all four models, when loaded; 'none' for none")
    p.add_argument("--algorithms", default="kmeans,minibatch,gmm,birch,ward,hdbscan",
                   help="clustering algorithms to run on every model (comma-separated); KMeans always runs")
    p.add_argument("--k-min", type=int, default=2)
    p.add_argument("--k-max", type=int, default=30)
    p.add_argument("--neighbors", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--map-iters", type=int, default=None,
                   help="t-SNE iterations per phase (early exaggeration, then normal); default 125, then 375")
    p.add_argument("--map-worker", choices=("auto", "on", "off"), default="auto",
                   help="make the 2-D maps in a second process alongside the other stages; "
                        "auto = from 50,000 images on")
    p.add_argument("--metric", action="append", metavar="MODEL=METRIC",
                   help="euclidean or cosine (rows L2-normalised before the PCA) for one model (repeatable); "
                        "default: cosine for re-ID models (osnet) and rows already of unit length, else euclidean")
    p.add_argument("--reuse", default=None, metavar="DIR",
                   help="keep every k sweep, final KMeans, neighbour table and 2-D map in DIR by its inputs, and reuse those an earlier load "
                        "with identical inputs kept there (the loader's own folder: never one from elsewhere)")
    p.add_argument("--status", default=None, metavar="FILE",
                   help="keep the current stage in this JSON file while loading, for the app to show; "
                        "removed when the build is published, left saying why when the load fails")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the heavy stages as Dask tasks: local (a LocalCluster of one worker per core), "
                        "local:N (N worker processes) or tcp://host:8786 (a running scheduler); default: this process")
    p.add_argument("--report", default=None, metavar="FILE",
                   help="also write the load's report (chosen k, ranks, image statuses, and with --scheduler the "
                        "workers' memory, bytes moved and neighbour recall) to FILE as JSON")
    p.add_argument("--blocks", default=None, metavar="DIR",
                   help="with --scheduler: where descriptor files are converted to row blocks once "
                        "(storage every worker reads at the same path; default: .blocks beside the database)")
    p.set_defaults(func=_load)

    p = sub.add_parser("first-start", help="the demo database to look at within a minute (KMeans on each "
                       "model), then the full load in the background")
    p.add_argument("dir", help="the demo dataset's folder (generated if missing)")
    p.add_argument("--db", required=True)
    p.add_argument("--vehicles", type=int, default=600, help="vehicles of a newly generated demo")
    p.add_argument("--no-background", action="store_true", help="only the first look")
    p.set_defaults(func=_first_start)

    p = sub.add_parser("export", help="write every image's clusters, names, outlier rank and verdict")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    p.add_argument("--reviews", default=None, help="reviews file (default: <db>.reviews.sqlite)")
    p.set_defaults(func=_export)

    p = sub.add_parser("assign", help="label a folder of new images with the current build's clusters")
    p.add_argument("dir")
    p.add_argument("--db", required=True)
    p.add_argument("--name", default=None, help="batch name (default: the folder's name)")
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=_assign)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except LoadFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
