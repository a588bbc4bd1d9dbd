"""`make bench`: the loader at full scale against the tools people reach for.

Generates the full-scale demo data (cached under .bench/), runs the loader
under /usr/bin/time -v, measures peers in the same run on the same data, and
the app's figures; writes docs/BENCHMARKS.md. Ratios are the point: the
machine is shared and noisy, so absolute seconds move between runs.

    python -m bench                      # full scale: 40,671 vehicles, ~416k images
    python -m bench --vehicles 300 --out /tmp/b.md   # the small run CI does
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import demo, neighbors, projection  # noqa: E402
from lib.queries import Explorer  # noqa: E402


PARTS = ("load", "foundation", "peers", "neighbours", "maps", "thumbnails", "app", "review", "firststart")
# issue 3's load: the four models and the foundation's stages, without issue 4's extras
FOUNDATION_ARGS = ("--combine", "none", "--algorithms", "kmeans")
# its peer in the same run: the maps made inline, in the loader, after each model's neighbours
FOUNDATION_PEER_ARGS = ("--map-worker", "off")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def dataset(work, vehicles, seed=0):
    d = work / f"data-{vehicles}"
    if (d / "truth.csv").exists():
        log(f"data cached at {d}")
        return d, None
    log(f"generating {vehicles} vehicles into {d}")
    # realistic crop size so the thumbnail stage is timed honestly
    _, secs = timed(demo.generate, d, n_vehicles=vehicles, seed=seed, image_size=(320, 240))
    return d, secs


def run_loader(data, db, extra=()):
    """The loader as a user runs it, under /usr/bin/time -v."""
    cmd = [sys.executable, "-m", "lib", "load", str(data), "--db", str(db), *extra]
    timer = ["/usr/bin/time", "-v"] if os.path.exists("/usr/bin/time") else []
    t = time.perf_counter()
    r = subprocess.run(timer + cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError("loader failed:\n" + r.stderr[-3000:])
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    peak = int(m.group(1)) / 1024 if m else float("nan")
    return wall, peak


def peers(ex, model, full_peers, rng):
    """Peer measurements on one model's reduced vectors (all rows unless said)."""
    from lib import embed

    Z = projection.stored_vectors(ex.con.cursor(), model)
    n = len(Z)
    out = {"model": model, "rows": n, "dims": Z.shape[1]}
    stages = ex.stages()
    ours = stages[(stages.model == model)].set_index("stage")["seconds"]
    out["ours_map_s"] = float(ours.get("2-D map", float("nan")))
    out["ours_knn_s"] = float(ours.get("neighbours", float("nan")))
    out["ours_map_quality"] = float(ex.models().set_index("model").loc[model, "map_knn_preservation"])

    # scikit-learn TSNE: timed at two sizes, extrapolated by its n log n cost
    from sklearn.manifold import TSNE

    sk = {}
    for m in (10000, 20000):
        m = min(m, n)
        idx = rng.choice(n, m, replace=False)
        _, secs = timed(TSNE(n_components=2, random_state=0, init="pca").fit_transform, Z[idx])
        sk[m] = secs
    m_hi = max(sk)
    out["sklearn_tsne"] = {str(k): v for k, v in sk.items()}
    out["sklearn_tsne_extrapolated_s"] = sk[m_hi] * (n * math.log(n)) / (m_hi * math.log(m_hi))

    # openTSNE and UMAP with their own neighbour search, as people run them
    rows = n if full_peers else min(n, 20000)
    idx = np.sort(rng.choice(n, rows, replace=False)) if rows < n else np.arange(n)
    out["peer_rows"] = rows
    try:
        from openTSNE import TSNE as OTSNE

        Y, secs = timed(lambda: np.asarray(OTSNE(n_jobs=2, random_state=0).fit(Z[idx])))
        out["opentsne_s"] = secs
        out["opentsne_quality"] = embed.knn_preservation(Z[idx], Y)
    except ImportError:
        out["opentsne_s"] = None
    try:
        import umap

        Y, secs = timed(lambda: umap.UMAP(random_state=0, n_jobs=1).fit_transform(Z[idx]))
        out["umap_s"] = secs
        out["umap_quality"] = embed.knn_preservation(Z[idx], Y)
    except ImportError:
        out["umap_s"] = None

    # exact brute-force kNN against the stored table
    q = rng.choice(n, min(2000, n), replace=False)
    (exact, _), secs = timed(neighbors.exact_knn, Z, Z[q], 10, query_ids=q)
    out["exact_qps"] = len(q) / secs
    stored = np.stack([ex.similar(model, int(i), 10, own_group=True, one_per_group=False)["image_id"].to_numpy()
                       for i in q[:500]])
    out["recall_at_10"] = neighbors.recall_at_k(stored, exact[:500], 10)
    out.update(similar_latency(ex, model, q[:500]))
    # the full-matrix Agglomerative: n(n-1)/2 float64 distances
    out["agglomerative_gib"] = n * (n - 1) / 2 * 8 / 2**30
    return out


def similar_latency(ex, model, image_ids):
    """``Explorer.similar`` (12 neighbours, as the page asks) timed on each image: p50, p95 (ms) and queries/s.

    The first call, which reads the build's per-image arrays once, is made before the timed ones.
    """
    ex.similar(model, int(image_ids[0]), 12)
    lat = []
    for i in image_ids:
        t = time.perf_counter()
        ex.similar(model, int(i), 12)
        lat.append(time.perf_counter() - t)
    return {"similar_p50_ms": float(np.percentile(lat, 50) * 1000),
            "similar_p95_ms": float(np.percentile(lat, 95) * 1000), "similar_qps": 1 / float(np.mean(lat))}


def app_figures(db, rounds=3, sessions=50):
    """First render of every page in Debian's chromium, and the app's resident memory after.

    Each of ``rounds`` starts a new server, warms it on the Overview and opens
    every page once (each page's own first reads are in its time); a page's
    figure is its median over the rounds, with the slowest beside it. Then
    one more server serves ``sessions`` sessions, each a new browser context
    on one page, and its resident memory is read every 10 sessions.
    """
    from tests.browser import launch, rss_mb, running_app, wait_rendered

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists("/usr/bin/chromium"):
        return None
    ex = Explorer(db)
    model = ex.model_names()[0]
    ex_rows = ex.n_images
    latency = similar_latency(ex, model, np.random.default_rng(0).choice(ex_rows, min(500, ex_rows), replace=False))
    ex.close()
    pages = ["", f"metrics?model={model}", f"clusters?model={model}", f"similar?model={model}&image=1",
             "outliers?model=consensus", "compare?image=1"]
    times, rss = {}, []
    for _ in range(rounds):
        with running_app(db) as base, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(base + "/")  # warm the server once: first-visit costs (imports) are not a page's
            wait_rendered(page, timeout=300000)
            for path in pages:
                page.goto(f"{base}/{path}")
                times.setdefault(path.split("?")[0] or "overview", []).append(wait_rendered(page, timeout=120000))
            rss.append(rss_mb(base.pid))  # this app's server, not any other `streamlit run` on the machine
            browser.close()
    # memory over many sessions: each a new browser context (a colleague opening a link) on one page,
    # closed after it drew; Streamlit keeps a closed session's state a while, so this is what grows
    growth = []
    with running_app(db) as base, sync_playwright() as p:
        browser = launch(p)
        for n in range(sessions):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            path = pages[n % len(pages)].replace("image=1", f"image={n * 7919 % ex_rows}")
            page.goto(f"{base}/{path}")
            wait_rendered(page, timeout=120000)
            context.close()
            if (n + 1) % 10 == 0:
                growth.append((n + 1, rss_mb(base.pid)))
        browser.close()
    return {"first_render_s": {k: float(np.median(v)) for k, v in times.items()},
            "first_render_max_s": {k: max(v) for k, v in times.items()}, "rounds": rounds, "app_rss_mb": max(rss),
            "sessions": sessions, "rss_after_sessions_mb": growth, "model": model, **latency}


def algorithm_section(res):
    """Each clustering algorithm's time per model (from the build's `algorithm_runs`), and the ranking."""
    runs = res.get("algorithms")
    if not runs:
        return []
    models = list(dict.fromkeys(r["model"] for r in runs))
    algos = list(dict.fromkeys(r["algorithm"] for r in runs))
    cell = {(r["model"], r["algorithm"]): r for r in runs}
    L = ["## Clustering algorithms\n",
         f"Every algorithm on all {res['rows']:,} rows of every model and combination; seconds for the "
         "parameter sweep and the final fit (KMeans: the final fit only, its sweep is the k sweep stage), "
         "then clusters found (and noise share where there is noise).\n",
         "| model | " + " | ".join(algos) + " |", "|---|" + "---:|" * len(algos)]
    for m in models:
        row = []
        for a in algos:
            r = cell.get((m, a))
            if r is None:
                row.append("")
                continue
            noise = f", {r['noise_share']:.1%} noise" if r["noise_share"] else ""
            row.append(f"{r['seconds']:.0f} s ({r['n_clusters']}{noise})")
        L.append(f"| {m} | " + " | ".join(row) + " |")
    totals = {a: sum(cell[(m, a)]["seconds"] for m in models if (m, a) in cell) for a in algos}
    L.append("| **total** | " + " | ".join(f"**{totals[a]:.0f} s**" for a in algos) + " |")
    ranks = res.get("ranks")
    if ranks:
        if "rank_groups" in ranks[0]:
            L.append("\nRecommendations (rules in the README, 'Ranking'): most interpretable groups "
                     "(`models.rank_groups`): " + ", ".join(f"{r['rank_groups']}. {r['model']}" for r in ranks)
                     + "; finding the same vehicle (`models.rank_neighbours`): "
                     + ", ".join(f"{r['rank_neighbours']}. {r['model']}"
                                 for r in sorted(ranks, key=lambda r: r["rank_neighbours"])) + ".\n")
        else:  # a part measured before the two recommendations
            L.append("\nRanking (`models.rank`, rule in the README then): "
                     + ", ".join(f"{r['rank']}. {r['model']}" for r in ranks) + ".\n")
    return L


def map_worker_peak_mb(stages):
    """Peak resident memory of the loader's map worker process; 0 when the maps were made inline."""
    if not any(s["stage"] == "waiting for 2-D maps" for s in stages):
        return 0.0
    return max(s["peak_rss_mb"] for s in stages if s["stage"] == "2-D map")


def stage_seconds(stages, stage):
    """Wall seconds of a load's stages named ``stage``, summed (a 2-D map's: the worker's own when it made it)."""
    return float(stages.loc[stages.stage == stage, "seconds"].sum())


def foundation_load(data, db, extra=()):
    """The foundation's load (``FOUNDATION_ARGS``) timed: wall, peak memory, its map worker's, its maps' and its
    thumbnails' seconds."""
    wall, peak = run_loader(data, db, [*extra, *FOUNDATION_ARGS])
    ex = Explorer(db)
    try:
        stages = ex.stages()
        return {"wall_s": wall, "peak_mb": peak, "worker_peak_mb": map_worker_peak_mb(stages.to_dict("records")),
                "map_s": stage_seconds(stages, "2-D map"), "thumbs_s": stage_seconds(stages, "thumbnails")}
    finally:
        ex.close()


def maps_where(worker_mb):
    """Where a load made its 2-D maps, from its map worker's memory (0 when it had none)."""
    return "in a second process" if worker_mb else "inline"


def memory(peak_mb, worker_mb):
    """Peak resident memory as measured by /usr/bin/time -v, with the map worker's added when there was one."""
    if not worker_mb:
        return f"**{peak_mb / 1024:.2f} GiB peak resident memory** (`/usr/bin/time -v`)"
    return (f"**{(peak_mb + worker_mb) / 1024:.2f} GiB peak resident memory** at most ({peak_mb / 1024:.2f} GiB "
            f"the loader's peak by `/usr/bin/time -v` + {worker_mb / 1024:.2f} GiB its map worker's)")


def report(res):
    L = []
    L.append("# Benchmarks\n")
    L.append(f"Made by `make bench` on {os.cpu_count()} cores. Data: the demo generator at {res['vehicles']:,} "
             f"vehicles = {res['rows']:,} images, descriptors of the real dims (2560 + 512 + 128 + 512 float32), "
             "JPEG crops (320×240 when `make bench` generates them; a `--work` folder's data may be the demo's "
             "192×144: the thumbnails section gives the size measured). Measured:\n")
    for part, stamp in res.get("measured", {}).items():
        L.append(f"- {part}: {stamp}")
    L.append("")
    from bench import targets

    L.extend(targets.section(res))
    L.append("## Loader\n")
    f = res.get("foundation")
    if f:
        L.append(f"`python -m lib load {' '.join(FOUNDATION_ARGS)}`: the four models through every stage of the "
                 f"foundation (PCA, k sweep, KMeans, neighbours, 2-D map, outliers, thumbnails): "
                 f"**{f['wall_s'] / 60:.1f} min wall**, {memory(f['peak_mb'], f['worker_peak_mb'])}. "
                 "Target (issue 3): 30 min and 10 GB.\n")
        peer = f.get("peer")
        if peer:
            L.append(f"Its peer in the same run, `{peer['args']}`: **{peer['wall_s'] / 60:.1f} min wall**, "
                     f"{memory(peer['peak_mb'], peer['worker_peak_mb'])}; the four 2-D maps took {f['map_s']:.0f} s "
                     f"of wall time {maps_where(f['worker_peak_mb'])} in the default load and {peer['map_s']:.0f} s "
                     f"{maps_where(peer['worker_peak_mb'])} in its peer"
                     + (f"; the thumbnail stage {f['thumbs_s']:.0f} s and {peer['thumbs_s']:.0f} s"
                        if "thumbs_s" in peer else "") + ".\n")
    worker = map_worker_peak_mb(res["stages"])
    L.append(f"`python -m lib load`, the default: also the two default combinations and five more clustering "
             f"algorithms on every model and combination: **{res['load_wall_s'] / 60:.1f} min wall**, "
             f"{memory(res['load_peak_mb'], worker)}. Target (issue 4): 60 min and 10 GB. Its stages:\n")
    if worker:
        L.append("The 2-D maps are made in a second process while the loader goes on (`--map-worker`, on from "
                 "50,000 images): their rows below are the worker's own wall and CPU time and memory, spent "
                 "alongside the stages after them; `waiting for 2-D maps` is what the loader waited for the last "
                 "ones.\n")
    L.append("| stage | model | wall s | CPU s | peak RSS so far (MiB) |\n|---|---|---:|---:|---:|")
    for s in res["stages"]:
        cpu = s.get("cpu_seconds")
        L.append(f"| {s['stage']} | {s['model'] or ''} | {s['seconds']:.1f} | "
                 f"{'—' if cpu is None else f'{cpu:.1f}'} | {s['peak_rss_mb']:.0f} |")
    L.append("\nSampled stages: the k sweep fits and scores KMeans on a random sample of 20,000 rows "
             "(silhouette on 5,000); every other stage runs on all rows.\n")
    L.extend(algorithm_section(res))
    p = res.get("peers")
    if not p:
        return "\n".join(L + ["Peers not measured yet: `python -m bench --parts peers`."]) + "\n"
    L.append(f"## Peers, same run, same data ({p['model']}: {p['rows']:,} rows × {p['dims']} PCA dims)\n")
    L.append("| task | ours | peer | ratio |\n|---|---|---|---:|")
    sk = p["sklearn_tsne"]
    L.append(f"| 2-D map of every row | {p['ours_map_s']:.0f} s (t-SNE on our neighbour graph), "
             f"10-NN kept {p['ours_map_quality']:.3f} | scikit-learn TSNE: "
             + ", ".join(f"{float(v):.0f} s at {int(k):,}" for k, v in sk.items())
             + f" → **{p['sklearn_tsne_extrapolated_s'] / 60:.0f} min extrapolated** (n log n) | "
             f"{p['sklearn_tsne_extrapolated_s'] / p['ours_map_s']:.0f}× |")
    for name in ("opentsne", "umap"):
        if p.get(f"{name}_s"):
            same = p["peer_rows"] == p["rows"]
            note = "" if same else f" on {p['peer_rows']:,} rows (ours: all {p['rows']:,})"
            ratio = f"{p[name + '_s'] / p['ours_map_s']:.1f}×" if same else "— (different row counts)"
            L.append(f"| 2-D map | {p['ours_map_s']:.0f} s, 10-NN kept {p['ours_map_quality']:.3f} | "
                     f"{'openTSNE' if name == 'opentsne' else 'UMAP'} with its own kNN: {p[name + '_s']:.0f} s"
                     f"{note}, 10-NN kept {p[name + '_quality']:.3f} | {ratio} |")
    exact_all = p["rows"] / p["exact_qps"]
    L.append(f"| neighbour table of every row | pynndescent in {p['ours_knn_s']:.0f} s; recall@10 "
             f"{p['recall_at_10']:.3f} against exact | exact brute force (BLAS, {p['exact_qps']:.0f} queries/s): "
             f"{exact_all:.0f} s for all rows | {exact_all / p['ours_knn_s']:.0f}× |")
    L.append(f"| one similar-images lookup | {p['similar_p50_ms']:.1f} ms (p50, stored table in DuckDB) | "
             f"exact search for one query: {1000 / p['exact_qps']:.1f} ms batched, without the page's joins | — |")
    ours_gib = (res["load_peak_mb"] + worker) / 1024
    L.append(f"| hierarchical clustering memory | {ours_gib:.1f} GiB for the whole load | "
             f"full-matrix Agglomerative: n(n−1)/2 float64 = **{p['agglomerative_gib']:.0f} GiB** | "
             f"{p['agglomerative_gib'] / ours_gib:.0f}× |")
    L.append("")
    if res.get("neighbours"):
        from bench import neighbours

        L.extend(neighbours.section(res["neighbours"]))
    if res.get("maps"):
        from bench import maps

        L.extend(maps.section(res["maps"]))
    if res.get("thumbnails"):
        from bench import thumbnails

        L.extend(thumbnails.section(res["thumbnails"]))
    L.append("## App\n")
    app = res.get("app")
    lat = app if app and "similar_p95_ms" in app else p
    L.append(f"Similar-images query by image ID in the data layer (`Explorer.similar` on {lat['model']}, 12 "
             f"neighbours, 500 random IDs): p50 {lat['similar_p50_ms']:.1f} ms, **p95 {lat['similar_p95_ms']:.1f} ms** "
             "(target 10 ms, issue 15).\n")
    if app:
        worst = app.get("first_render_max_s", {})
        L.append("First render in Debian's chromium (from navigation start until the page is drawn and "
                 f"Streamlit is idle), on {app.get('rounds', 1)} newly started servers, each warmed once on the "
                 "Overview; target 1.5 s:\n")
        L.append("| page | median s | slowest s |\n|---|---:|---:|")
        for k, v in app["first_render_s"].items():
            L.append(f"| {k} | {v:.2f} | {worst.get(k, v):.2f} |")
        L.append(f"\nApp resident memory after visiting every page: **{app['app_rss_mb']:.0f} MiB** (the largest "
                 "of the servers; target 700 MB).\n")
        if app.get("rss_after_sessions_mb"):
            L.append(f"Resident memory of one server over {app['sessions']} sessions (each a new browser context "
                     "opening one page, then closed): " + ", ".join(
                         f"{n} sessions {mb:.0f} MiB" for n, mb in app["rss_after_sessions_mb"])
                     + f"; **{app['rss_after_sessions_mb'][-1][1]:.0f} MiB** at the end (target 750 MiB).\n")
    else:
        L.append("Browser figures skipped: no /usr/bin/chromium or playwright.\n")
    if res.get("review"):
        from bench import review

        L.extend(review.section(res["review"]))
    fs = res.get("firststart")
    if fs:
        L.append(f"## First start\n\n`make run` in a fresh clone of HEAD with the dependencies installed "
                 f"(`bench/firststart.py`; a {fs['vehicles']}-vehicle demo, {fs['images']:,} images), timed from its "
                 "start: the server answering, a complete Overview in Debian's chromium (the first look: KMeans on "
                 "each model), and the background load's build landing (every algorithm and combination). Peer in "
                 "the same run: the full load of the same demo in the foreground, what the first start waited for "
                 "before it came in two steps. Targets (issue 15): Overview within 90 s, every page within 3 min.\n")
        L.append("| figure | seconds |\n|---|---:|")
        L.append(f"| server answers | {fs['server_s']:.1f} |")
        L.append(f"| **complete Overview** | **{fs['overview_s']:.1f}** |")
        L.append(f"| background load's build lands | {fs['full_s']:.1f} (its own load {fs['background_load_s']:.0f}) |")
        if "peer_full_load_s" in fs:
            L.append(f"| peer: the full load in the foreground | {fs['peer_full_load_s']:.1f} |")
        L.append(f"\nLoad average at the end: {', '.join(f'{x:.1f}' for x in fs['load_average'])}.\n")
    L.append("## Reproduce\n\n```sh\nmake bench\n```\n\nRaw numbers: `docs/benchmarks.json`.")
    return "\n".join(L) + "\n"


def rewrite(json_path, out):
    """Rewrite the Markdown report from a run's saved numbers (no measuring)."""
    res = json.loads(Path(json_path).read_text())
    Path(out).write_text(report(res))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--vehicles", type=int, default=40671)
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--peer-model", default="vdc_color")
    ap.add_argument("--sample-peers", action="store_true", help="run openTSNE/UMAP on 20k rows, not all")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="what to measure (default all); the rest is kept from the saved benchmarks.json")
    ap.add_argument("--app-rounds", type=int, default=3, help="newly started servers to time first renders on")
    ap.add_argument("--app-sessions", type=int, default=50, help="sessions one server serves for its memory")
    ap.add_argument("--app-db", help="an existing database for the neighbours, app and review parts "
                                     "(default: the bench's own)")
    ap.add_argument("--review-verdicts", type=int, default=200, help="flagged entries the review part reviews")
    ap.add_argument("--firststart-vehicles", type=int, default=600,
                    help="the demo's vehicles for the first-start part (make run's default: 600)")
    ap.add_argument("--maps-vehicles", type=int, default=9000,
                    help="vehicles of the realistic set the maps part maps (9,000: about 95,000 rows)")
    ap.add_argument("--thumbs-data", help="a data folder whose images the thumbnails part decodes "
                                          "(default: the bench's own, 320 x 240 crops)")
    ap.add_argument("--thumbs-sample", type=int, default=40_000,
                    help="random images each decoder makes thumbnails of, per round")
    ap.add_argument("--loader-args", default="", help="extra arguments for python -m lib load (quick CI runs)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    res = {"vehicles": args.vehicles, "when": time.strftime("%Y-%m-%d %H:%M"),
           "args": "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))}

    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        raise SystemExit(f"error: --parts: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}")
    out = Path(args.out)
    saved = out.with_name("benchmarks.json")
    if parts != set(PARTS) and saved.exists():
        # a partial run keeps the other parts' numbers from the saved run, each with its own date
        res = {**json.loads(saved.read_text()), "args": res["args"], "when": res["when"]}
    res.setdefault("measured", {})
    stamp = f"{res['when']} by `python -m bench{res['args']}`"

    db = work / f"db-{args.vehicles}" / "vehicles.duckdb"
    if parts & {"load", "foundation"} or ("thumbnails" in parts and not args.thumbs_data):
        data, gen_s = dataset(work, args.vehicles)
    if "load" in parts:
        res["generate_s"] = gen_s
        log("loading (all models, all stages)")
        res["load_wall_s"], res["load_peak_mb"] = run_loader(data, db, args.loader_args.split())
        ex = Explorer(db)
        res["rows"] = ex.n_images
        res["stages"] = ex.stages().replace({np.nan: None}).to_dict("records")
        res["algorithms"] = ex.algorithm_runs()[["model", "algorithm", "seconds", "n_clusters",
                                                 "noise_share"]].to_dict("records")
        res["ranks"] = ex.compare()[["rank_groups", "rank_neighbours", "model"]].to_dict("records")
        ex.close()
        res["measured"]["load"] = stamp
        log(f"loaded in {res['load_wall_s']:.0f}s, peak {res['load_peak_mb']:.0f} MiB")
    if "foundation" in parts:
        log("loading the foundation's stages only (" + " ".join(FOUNDATION_ARGS) + ")")
        res["foundation"] = foundation_load(data, work / f"db-foundation-{args.vehicles}" / "vehicles.duckdb",
                                            args.loader_args.split())
        log("the same with " + " ".join(FOUNDATION_PEER_ARGS))
        res["foundation"]["peer"] = foundation_load(
            data, work / f"db-foundation-peer-{args.vehicles}" / "vehicles.duckdb",
            [*args.loader_args.split(), *FOUNDATION_PEER_ARGS])
        res["foundation"]["peer"]["args"] = " ".join(FOUNDATION_PEER_ARGS)
        res["measured"]["foundation"] = stamp
        f = res["foundation"]
        log(f"foundation loaded in {f['wall_s']:.0f}s, peak {f['peak_mb']:.0f} MiB (+ map worker "
            f"{f['worker_peak_mb']:.0f} MiB); with {f['peer']['args']} {f['peer']['wall_s']:.0f}s")
    if "peers" in parts:
        log(f"peers on {args.peer_model}")
        ex = Explorer(db)
        res["peers"] = peers(ex, args.peer_model, not args.sample_peers, rng)
        ex.close()
        res["measured"]["peers"] = stamp
    if "neighbours" in parts:
        from bench import neighbours

        log("neighbour tables against exact search and pynndescent's defaults")
        res["neighbours"] = neighbours.measure(Path(args.app_db) if args.app_db else db)
        res["measured"]["neighbours"] = stamp
    if "maps" in parts:
        from bench import maps

        log(f"maps on the realistic set at {args.maps_vehicles} vehicles, against openTSNE and UMAP")
        res["maps"] = {"vehicles": args.maps_vehicles, "rows": maps.measure(args.maps_vehicles)}
        res["measured"]["maps"] = stamp
    if "thumbnails" in parts:
        from bench import thumbnails

        log("thumbnails: Pillow's draft mode, simplejpeg and pyvips, alternating rounds")
        res["thumbnails"] = thumbnails.measure(Path(args.thumbs_data) if args.thumbs_data else data,
                                               args.thumbs_sample)
        res["measured"]["thumbnails"] = stamp
    if "app" in parts:
        log("app figures")
        res["app"] = app_figures(Path(args.app_db) if args.app_db else db, args.app_rounds, args.app_sessions)
        res["measured"]["app"] = stamp
    if "review" in parts:
        from bench import review

        log(f"review: {args.review_verdicts} verdicts three ways")
        ways = review.measure(Path(args.app_db) if args.app_db else db, args.review_verdicts)
        res["review"] = {"verdicts": next(iter(ways.values()))["verdicts"], "ways": ways}
        res["measured"]["review"] = stamp
    if "firststart" in parts:
        from bench import firststart

        log(f"first start: make run in a fresh clone, a {args.firststart_vehicles}-vehicle demo")
        res["firststart"] = firststart.measure(args.firststart_vehicles)
        res["measured"]["firststart"] = stamp
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(res))
    saved.write_text(json.dumps(res, indent=1, default=float))
    log(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
