"""`make dask-scaling`: the loader on Dask with 1 and 2 local workers against the single-process path.

For every size, three loads one after the other on the same data, as a user
runs them (``python -m lib load``, under ``/usr/bin/time -v``): the single
path, ``--scheduler local:1`` and ``--scheduler local:2``. All four models,
every stage, KMeans only and no combination, so the heavy stages dominate.
Each Dask load converts the descriptors to row blocks itself (its own
``--blocks`` folder, removed afterwards), so its time includes that.

Reads the loader's report (``--report``: workers' peak memory, bytes moved
per stage, neighbour recall) and its stages table; writes docs/dask_scaling.json
and the measured section of docs/SCALING.md.

    python -m bench.dask_scaling                                   # 100k and 414k images
    python -m bench.dask_scaling --vehicles 40671 --workers 2      # one size, one worker count (others kept)
    python -m bench.dask_scaling --vehicles 600 --out /tmp/d.json --doc /tmp/S.md   # a toy run
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from bench.__main__ import ROOT, dataset, log, run_loader
from lib.queries import Explorer

LOAD_ARGS = ("--algorithms", "kmeans", "--combine", "none")
BEGIN, END = "<!-- dask-scaling -->", "<!-- /dask-scaling -->"


def measure(work, vehicles, label, extra, keep=False):
    data, _ = dataset(work, vehicles)
    out = work / f"dask-scaling-{vehicles}-{label.split(',')[-1].strip().replace(' ', '-')}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db, report_file = out / "vehicles.duckdb", out / "report.json"
    log(f"{vehicles} vehicles: {label}")
    wall, peak = run_loader(data, db, [*LOAD_ARGS, *extra, "--report", str(report_file), "--blocks",
                                       str(out / "blocks")])
    report = json.loads(report_file.read_text())
    ex = Explorer(db)
    try:
        stages = ex.stages()
        rows = ex.n_images
    finally:
        ex.close()
    per_stage = stages.groupby("stage", sort=False)["seconds"].sum().round(1).to_dict()
    dask = report.get("dask")
    res = {"vehicles": vehicles, "rows": rows, "run": label, "wall_s": round(wall, 1), "loader_peak_mb": round(peak),
           "stages_s": per_stage}
    if dask:
        res["worker_peak_mb"] = [round(w["peak_rss_mb"]) for w in dask["workers"].values()]
        res["recall_at_10"] = dask["recall_at_10"]
        moved = {}
        for t in dask["traffic"]:
            m = moved.setdefault(t["stage"], [0, 0])
            m[0] += t["between_workers_bytes"]
            m[1] += t["to_loader_bytes"]
        res["moved_mb"] = {s: [round(a / 2**20, 1), round(b / 2**20, 1)] for s, (a, b) in moved.items()}
    # the blocks of 414k images are 6 GB; --keep leaves the database, to look at in the app
    shutil.rmtree(out / "blocks" if keep else out, ignore_errors=True)
    return res


def report(runs):
    L = [BEGIN, "", "## Measured: the Dask path (`--scheduler`)", "",
         "Made by `make dask-scaling` (`python -m bench.dask_scaling`), one machine with 2 cores; each row says "
         "when it was measured. Every Dask run has its peer in the same run of the command: a single-process load of the "
         "same data, just before or after it. `--scheduler local:1` and `local:2` are a `LocalCluster` of 1 or 2 "
         "worker processes of one thread. "
         "All four models, every stage, KMeans only, no combination. A Dask load's time includes converting "
         "the pickles to row blocks. Memory: the loader process (GNU time's maximum resident set, which also "
         "covers the largest child), and each worker's own peak.", "",
         "| images | run | wall (min) | loader peak (GiB) | worker peaks (GiB) | neighbour recall@10 (min over models) "
         "| measured |", "|---:|---|---:|---:|---|---:|---|"]
    for r in runs:
        workers = ", ".join(f"{p / 1024:.2f}" for p in r.get("worker_peak_mb", [])) or "–"
        recall = f"{min(r['recall_at_10'].values()):.3f}" if r.get("recall_at_10") else "–"
        L.append(f"| {r['rows']:,} | {r['run']} | {r['wall_s'] / 60:.1f} | {r['loader_peak_mb'] / 1024:.2f} | "
                 f"{workers} | {recall} | {r.get('measured', '')}{'; ' + r['note'] if r.get('note') else ''} |")
    L += ["", "Seconds per stage (summed over models; on Dask the 2-D maps run on the workers alongside the "
          "stages after them, and the loader's wait for them is its own stage):", ""]
    L += per_stage(runs, "stages_s", lambda v: f"{v or 0:.0f}")
    dask_runs = [r for r in runs if r.get("moved_mb")]
    if dask_runs:
        L += ["", "Bytes moved per stage, MiB, between workers / from workers to the loader (Dask's own transfer "
              "counters; a map made alongside counts in the stage it overlaps):", ""]
        L += per_stage(dask_runs, "moved_mb", lambda v: "{:.0f} / {:.0f}".format(*(v or (0, 0))))
    L += estimate(runs)
    L += ["", END]
    return "\n".join(L)


def per_stage(runs, key, cell):
    """A table of one row per stage in ``run[key]`` (in the order first seen), one column per run."""
    stages = list(dict.fromkeys(s for r in runs for s in r[key]))
    return (["| stage | " + " | ".join(f"{r['rows'] // 1000}k {r['run']}" for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
            + [f"| {s} | " + " | ".join(cell(r[key].get(s)) for r in runs) + " |" for s in stages])


# stages whose work is on the workers and grows with the rows; the loader's own growing stages; the rest
# (the k sweep and its restarts on samples) stays about the same at any size
WORKER_STAGES = ("PCA", "clustering", "neighbours", "outliers", "thumbnails", "2-D map")
LOADER_STAGES = ("read descriptors", "near-duplicates", "evidence", "consensus outliers", "cluster centres",
                 "cluster colours", "agreement and ranking")


def estimate(runs, target=10_000_000, workers=32):
    """The expected time at ``target`` images on ``workers`` worker cores, from the largest 2-worker run."""
    two = [r for r in runs if r["run"] == "Dask, 2 workers"]
    if not two:
        return []
    r = max(two, key=lambda x: x["rows"])
    single = next((x for x in runs if x["rows"] == r["rows"] and x["run"] == "single process"), None)
    st = r["stages_s"]
    # wall seconds of a stage on 2 workers x 2 = worker-seconds (an upper bound: the loader shared the cores)
    per_row_worker = 2 * sum(st.get(s, 0) for s in WORKER_STAGES) / r["rows"]
    per_row_loader = sum(st.get(s, 0) for s in LOADER_STAGES) / r["rows"]
    fixed = st.get("k sweep", 0) + st.get("cluster: kmeans", 0)
    t = per_row_worker * target / workers + per_row_loader * target + fixed
    L = ["", "Reading it: on this one 2-core machine the Dask path is slower than the single process "
         + (f"({r['wall_s'] / 60:.1f} against {single['wall_s'] / 60:.1f} min at {r['rows']:,} images): " if single
            else ": ")
         + "the loader, the workers and the maps share the same two cores, every block crosses a process "
         "boundary, and each worker is single-threaded where the single process gives BLAS, numba and openTSNE "
         "both cores. What it buys is that no process holds every descriptor (each worker's peak stays near "
         f"{max(r['worker_peak_mb']) / 1024:.1f} GiB) and that adding machines adds workers. "
         "Neighbour recall@10 stays at 0.98 or above on every model, as the probes are chosen for it.", "",
         f"Expected at {target / 1e6:.0f}M images on {workers} worker cores, from the {r['rows']:,}-image run "
         f"with 2 workers, every growing stage taken as linear in the rows: the workers' stages "
         f"({', '.join(WORKER_STAGES)}) cost {per_row_worker * 1000:.1f} ms of worker time per image, "
         f"{per_row_worker * target / workers / 60:.0f} min spread over {workers} workers; the loader's own "
         f"growing stages (converting the pickles, near-duplicates, evidence, ranking) "
         f"{per_row_loader * 1000:.2f} ms per image, {per_row_loader * target / 60:.0f} min; the k sweep and "
         f"the restarts on samples about {fixed / 60:.0f} min at any size. In all about "
         f"{t / 3600:.1f} h, against "
         + (f"{single['wall_s'] * target / single['rows'] / 3600:.0f} h or more for the single process scaled "
            "linearly (where the descriptors, 150 GB, no longer fit one machine's memory)." if single else "."),
         "This is an upper bound for the workers' part (on this machine the loader took a share of the same "
         "cores) and a lower one for the loader's (writing DuckDB and near-duplicate groups grow a little faster "
         "than linearly)."]
    return L


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", default="9810,40671", help="sizes in vehicles (40671 = the full 414,575 images)")
    ap.add_argument("--workers", default="1,2", help="Dask runs: worker counts (the single process always runs)")
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "dask_scaling.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "SCALING.md"))
    ap.add_argument("--keep", action="store_true",
                    help="keep each run's database (without its blocks) in WORK/dask-scaling-SIZE-RUN/")
    ap.add_argument("--doc-only", action="store_true", help="only rewrite the section from the JSON file")
    args = ap.parse_args(argv)
    out = Path(args.out)
    # runs of other sizes or worker counts measured before stay; the same run is replaced
    runs = json.loads(out.read_text()) if out.exists() else []
    plan = [("single process", ())] + [(f"Dask, {w} worker{'s' if int(w) > 1 else ''}", ("--scheduler", f"local:{w}"))
                                       for w in args.workers.split(",") if w]
    for v in (int(x) for x in args.vehicles.split(",") if not args.doc_only):
        for label, extra in plan:
            res = dict(measure(Path(args.work), v, label, extra, args.keep), measured=time.strftime("%Y-%m-%d %H:%M"))
            runs = [r for r in runs if (r["vehicles"], r["run"]) != (v, label)] + [res]
            runs.sort(key=lambda r: (r["vehicles"], r["run"] != "single process", r["run"]))
            out.write_text(json.dumps(runs, indent=1))
    doc = Path(args.doc)
    text = doc.read_text() if doc.exists() else ""
    section = report(runs)
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)
    log(f"wrote {args.out} and {doc}")


if __name__ == "__main__":
    main()
