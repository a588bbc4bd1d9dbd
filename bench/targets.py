"""Issue 15's targets beside the figures that answer them: the first table of docs/BENCHMARKS.md.

Every row is computed from the parts' results as they are stored in
``docs/benchmarks.json``, so a part measured again moves its row; a part
never measured leaves its rows out.
"""
from __future__ import annotations

GB = 1e9 / 2**20  # MiB per GB: the memory targets are decimal


def rows(res):
    """``(target, figure, met, part)`` for every target whose part has been measured."""
    out = []
    fs = res.get("firststart")
    if fs:
        out.append(("first start: complete Overview ≤ 90 s", f"{fs['overview_s']:.0f} s", fs["overview_s"] <= 90,
                    "firststart"))
        out.append(("first start: every page's data ≤ 180 s", f"{fs['full_s']:.0f} s", fs["full_s"] <= 180,
                    "firststart"))
    f = res.get("foundation")
    if f:
        out.append(("foundation load ≤ 12 min", f"{f['wall_s'] / 60:.1f} min", f["wall_s"] <= 12 * 60, "foundation"))
        peak = f["peak_mb"] + f["worker_peak_mb"]
        out.append(("foundation load ≤ 6 GB peak, the side process for the maps included", f"{peak / GB:.2f} GB",
                    peak <= 6 * GB, "foundation"))
    if res.get("load_wall_s"):
        out.append(("default load ≤ 20 min", f"{res['load_wall_s'] / 60:.1f} min", res["load_wall_s"] <= 20 * 60,
                    "load"))
    th = res.get("thumbnails")
    if th:
        # the decoders alone, extrapolated, and the stage itself in the default load (reading, storing, and
        # a map worker beside it if the load had one): the issue names the stage, so the stage decides when
        # it was measured
        best = min(th["ways"].values(), key=lambda w: w["ms_per_image"])
        stages = res.get("stages") or ()
        stage = next((s["seconds"] for s in stages if s["stage"] == "thumbnails"), None)
        figure = f"{best['full_s']:.0f} s decoding alone (extrapolated)"
        measured = []  # the stage in every load of the report: each must meet the target
        if stage is not None:
            figure += f"; the stage in the default load {stage:.0f} s, " + thumbnails_company(stages)
            measured.append(stage)
        f = res.get("foundation") or {}
        if f.get("thumbs_s") is not None:
            figure += f"; {f['thumbs_s']:.0f} s in the foundation load"
            measured.append(f["thumbs_s"])
            if (f.get("peer") or {}).get("thumbs_s") is not None:
                figure += f", {f['peer']['thumbs_s']:.0f} s in its peer"
                measured.append(f["peer"]["thumbs_s"])
        out.append(("thumbnails ≤ 120 s", figure, max(measured or [best["full_s"]]) <= 120, "thumbnails"))
    nb = res.get("neighbours")
    if nb:
        low = min(r["ours_recall"] for r in nb)
        ours, defaults = sum(r["ours_s"] for r in nb), sum(r["defaults_s"] for r in nb)
        out.append(("neighbours: recall@10 ≥ 0.99 on every model", f"min {low:.4f}", low >= 0.99, "neighbours"))
        out.append(("neighbours: in no more time than pynndescent's defaults", f"{ours:.0f} s against {defaults:.0f} s",
                    ours <= defaults, "neighbours"))
    maps = res.get("maps")
    if maps:
        kept = all(r["ours_q"] >= r["opentsne_q"] for r in maps["rows"])
        ratio = max(r["ours_s"] / r["opentsne_s"] for r in maps["rows"])
        out.append(("maps: 10-NN kept ≥ openTSNE's on every model", "; ".join(
            f"{r['model']} {r['ours_q']:.3f} vs {r['opentsne_q']:.3f}" for r in maps["rows"]), kept, "maps"))
        out.append(("maps: ≤ 1/4 of openTSNE's time", f"at most {ratio:.2f}", ratio <= 0.25, "maps"))
    app = res.get("app")
    if app:
        slowest = max(app["first_render_s"], key=app["first_render_s"].get)
        render = app["first_render_s"][slowest]
        out.append(("app: first render of every page ≤ 1.5 s (median)", f"{render:.2f} s ({slowest})", render <= 1.5,
                    "app"))
        out.append(("app: similar images p95 ≤ 10 ms", f"{app['similar_p95_ms']:.1f} ms",
                    app["similar_p95_ms"] <= 10, "app"))
        out.append(("app: resident memory ≤ 700 MB after every page", f"{app['app_rss_mb'] * 2**20 / 1e6:.1f} MB",
                    app["app_rss_mb"] * 2**20 <= 700e6, "app"))
    return out


def section(res):
    """The targets table as markdown lines (none when no part is measured)."""
    table = rows(res)
    if not table:
        return []
    measured = res.get("measured", {})
    L = ["## Targets (issue 15)\n", "| target | measured | met | by |", "|---|---|---|---|"]
    for target, figure, met, part in table:
        L.append(f"| {target} | {figure} | {'**yes**' if met else 'no'} | {measured.get(part, part)} |")
    L.append("")
    return L


def thumbnails_company(stages):
    """What ran beside a load's thumbnail stage, from the order of its stages (older loads, still in
    saved reports, made the thumbnails last, while the map worker still ran)."""
    names = [s["stage"] for s in stages]
    if "read descriptors" in names and names.index("thumbnails") < names.index("read descriptors"):
        return "first, before any other stage or map"
    if "waiting for 2-D maps" in names:
        return "beside the map worker"
    return "after the models' stages"
