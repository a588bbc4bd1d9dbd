"""`make scaling`: the loader at growing sizes, and each stage's growth exponent.

Runs the loader (all models, all stages) on demo datasets of about 50k, 100k,
200k and 416k images, reads the per-stage wall and CPU seconds the loader
stores in its ``stages`` table, and fits ``seconds = a * n ** b`` per stage
by least squares on the logs. Writes docs/SCALING.md with the measurements,
the exponents and the plan for datasets past one machine.

    python -m bench.scaling                      # 50k, 100k, 200k, 416k
    python -m bench.scaling --images 3000,6000 --out /tmp/s.md   # a toy run

Every load makes its 2-D maps inline (``--map-worker off``): stages run one
after the other, so each stage's seconds are its own and not shared with a
map running alongside. Datasets and databases are cached under .bench/ (the
416k ones are shared with `make bench`); a size whose database exists, with
its maps made inline, is not loaded again unless ``--rebuild`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench import dask_scaling
from bench.__main__ import ROOT, dataset, log, run_loader
from lib.queries import Explorer

IMAGES_PER_VEHICLE = 414575 / 40671  # the demo's mean: 4-16 photos, ~10.2
FULL_VEHICLES = 40671  # the real dataset's vehicle count


def vehicles_for(images):
    return FULL_VEHICLES if images >= 400_000 else max(10, round(images / IMAGES_PER_VEHICLE))


def measure(work, vehicles, rebuild=False, loader_args=()):
    """Load one size (or reuse its database); return rows, wall, peak and per-stage times."""
    data, _ = dataset(work, vehicles)
    db = work / f"db-{vehicles}" / "vehicles.duckdb"
    fresh = rebuild or not db.exists() or maps_in_background(db)
    if fresh:
        log(f"loading {vehicles} vehicles")
        wall, peak = run_loader(data, db, [*loader_args, "--map-worker", "off"])
    ex = Explorer(db)
    try:
        stages = ex.stages()
        meta = dict(ex.rows("SELECT key, value FROM meta"))
        rows = ex.n_images
    finally:
        ex.close()
    if not fresh:
        wall, peak = float(meta["load_seconds"]), float(stages["peak_rss_mb"].max())
    if "cpu_seconds" not in stages:
        stages["cpu_seconds"] = np.nan
    per_stage = stages.groupby("stage", sort=False)[["seconds", "cpu_seconds"]].sum(min_count=1)
    return {"vehicles": vehicles, "rows": rows, "wall_s": wall, "peak_mb": peak, "built_at": meta.get("built_at"),
            "stages": {s: {"seconds": float(r.seconds), "cpu_seconds": float(r.cpu_seconds)}
                       for s, r in per_stage.iterrows()}}


def maps_in_background(db):
    """Whether a database's load made its maps in a second process (as `make bench` does at full scale)."""
    ex = Explorer(db)
    try:
        return bool((ex.stages()["stage"] == "waiting for 2-D maps").any())
    finally:
        ex.close()


def growth_exponent(rows, seconds):
    """Least-squares slope of log(seconds) on log(rows): ``seconds ~ rows ** b``.

    Returns NaN with fewer than two usable points.
    """
    x, y = np.asarray(rows, float), np.asarray(seconds, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def exponents(runs):
    """Per stage (and the whole load): the fitted exponent of wall and CPU seconds."""
    rows = [r["rows"] for r in runs]
    names = list(dict.fromkeys(s for r in runs for s in r["stages"]))
    out = {}
    for s in names:
        wall = [r["stages"].get(s, {}).get("seconds", np.nan) for r in runs]
        cpu = [r["stages"].get(s, {}).get("cpu_seconds", np.nan) for r in runs]
        out[s] = {"wall": growth_exponent(rows, wall), "cpu": growth_exponent(rows, cpu)}
    out["whole load"] = {"wall": growth_exponent(rows, [r["wall_s"] for r in runs]),
                         "cpu": growth_exponent(rows, [sum(v["cpu_seconds"] for v in r["stages"].values())
                                                       for r in runs])}
    out["peak memory"] = {"wall": growth_exponent(rows, [r["peak_mb"] for r in runs]), "cpu": float("nan")}
    return out


def _fmt(v, spec=".0f"):
    return "—" if v is None or not np.isfinite(v) else format(v, spec)


def report(res):
    runs, exps = res["runs"], res["exponents"]
    L = ["# Scaling\n",
         f"Made by `make scaling` (`python -m bench.scaling{res['args']}`) on {res['when']}, {os.cpu_count()} cores. "
         "Data: the demo generator (real dims: 2560 + 512 + 128 + 512 float32 descriptors, 320×240 JPEG crops); "
         "the loader runs all four models and every stage, one after the other (`--map-worker off`: "
         "the maps inline, so that each stage's time is its own). Each size's build time is listed: sizes may come "
         "from different runs on a shared machine, which is why CPU seconds (user + system, summed over the "
         "process and its workers) are fitted as well as wall seconds.\n",
         "## Whole load\n",
         "| images | vehicles | wall (min) | peak RSS (GiB) | CPU (min) | built |", "|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        cpu = sum(v["cpu_seconds"] for v in r["stages"].values())
        L.append(f"| {r['rows']:,} | {r['vehicles']:,} | {r['wall_s'] / 60:.1f} | {r['peak_mb'] / 1024:.2f} | "
                 f"{_fmt(cpu / 60, '.1f')} | {r['built_at']} |")
    L += ["", "## Stages: seconds (wall / CPU) and the fitted exponent b of seconds ∝ n^b\n"]
    head = " | ".join(f"{r['rows']:,}" for r in runs)
    L += [f"| stage | {head} | b (wall) | b (CPU) |", "|---|" + "---:|" * (len(runs) + 2)]
    for s, e in exps.items():
        if s in ("whole load", "peak memory"):
            continue
        cells = " | ".join(f"{_fmt(r['stages'].get(s, {}).get('seconds'))} / "
                           f"{_fmt(r['stages'].get(s, {}).get('cpu_seconds'))}" for r in runs)
        L.append(f"| {s} | {cells} | {_fmt(e['wall'], '.2f')} | {_fmt(e['cpu'], '.2f')} |")
    w, m = exps["whole load"], exps["peak memory"]
    L.append(f"| **whole load** | " + " | ".join(f"{r['wall_s']:.0f}" for r in runs)
             + f" | **{_fmt(w['wall'], '.2f')}** | **{_fmt(w['cpu'], '.2f')}** |")
    L.append(f"\nPeak memory grows as n^{_fmt(m['wall'], '.2f')}.\n")
    share = [sum(v["cpu_seconds"] for v in r["stages"].values()) / r["wall_s"] for r in runs]
    if not all(np.isfinite(share)) or max(share) > 1.5 * min(share):
        # wall seconds from runs that got different shares of the CPU do not describe growth
        L.append("**Warning:** the sizes ran under different machine load (CPU seconds per wall second: "
                 + ", ".join(_fmt(s, ".2f") for s in share) + "), so the wall exponents are not "
                 "comparable; read the CPU ones, and re-run `python -m bench.scaling --rebuild` on a quiet machine.\n")
        return "\n".join(L + [Path(ROOT / "bench" / "SCALING_PLAN.md").read_text()]) + "\n"
    last = runs[-1]
    if np.isfinite(w["wall"]):
        at = {n: last["wall_s"] * (n / last["rows"]) ** w["wall"] for n in (1_000_000, 10_000_000)}
        L.append(f"Extrapolated from {last['rows']:,} images by the whole-load exponent, one machine like this one: "
                 f"1M images ≈ {at[1_000_000] / 60:.0f} min, 10M ≈ {at[10_000_000] / 3600:.1f} h.\n")
    L.append(Path(ROOT / "bench" / "SCALING_PLAN.md").read_text())
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.scaling")
    ap.add_argument("--images", default="50000,100000,200000,416314", help="comma-separated dataset sizes")
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "SCALING.md"))
    ap.add_argument("--rebuild", action="store_true", help="load again even where a database exists")
    ap.add_argument("--loader-args", default="", help="extra arguments for python -m lib load (quick runs)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(s) for s in args.images.split(","))
    runs = [measure(work, vehicles_for(s), args.rebuild, args.loader_args.split()) for s in sizes]
    res = {"when": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "exponents": exponents(runs),
           "args": "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report(res)
    old = out.read_text() if out.exists() else ""
    if dask_scaling.BEGIN in old:  # `make dask-scaling`'s measured section stays
        text = text.rstrip() + "\n\n" + old[old.index(dask_scaling.BEGIN):old.index(dask_scaling.END)] \
            + dask_scaling.END + "\n"
    out.write_text(text)
    out.with_name("scaling.json").write_text(json.dumps(res, indent=1, default=float))
    log(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
