"""`make bench` at toy scale, so the script cannot rot (CI has no time for the full run)."""
import json

from bench.__main__ import PARTS, main


def test_bench_runs_end_to_end_and_reports(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    res = main(["--vehicles", "40", "--work", str(tmp_path / "work"), "--out", str(out), "--sample-peers",
                "--app-rounds", "2", "--app-sessions", "10", "--loader-args=--k-max 6 --map-iters 60",
                "--firststart-vehicles", "20", "--maps-vehicles", "40", "--thumbs-sample", "150",
                # every part but the review, which has its own test below on the session's database
                "--parts", ",".join(p for p in PARTS if p != "review")])
    text = out.read_text()
    for section in ("## Loader", "## Peers", "## App", "| page | median s | slowest s |", "scikit-learn TSNE",
                    "extrapolated", "recall@10", "## Clustering algorithms", "| hdbscan |",
                    "Recommendations (rules in the README", "(`models.rank_groups`): 1. ", "(`models.rank_neighbours`): 1. "):
        assert section in text
    assert res["rows"] > 300 and res["load_peak_mb"] > 50
    app = res["app"]
    assert app["rounds"] == 2 and len(app["first_render_s"]) == 6
    assert all(0 < app["first_render_s"][k] <= app["first_render_max_s"][k] for k in app["first_render_s"])
    assert app["sessions"] == 10 and [n for n, _ in app["rss_after_sessions_mb"]] == [10]
    assert app["rss_after_sessions_mb"][0][1] > 50  # a live server's memory was read
    assert "Resident memory of one server over 10 sessions" in text
    assert 0 < app["similar_p50_ms"] <= app["similar_p95_ms"] and "(target 10 ms" in text
    p = res["peers"]
    assert p["recall_at_10"] >= 0.95  # the stored table against brute force
    assert p["agglomerative_gib"] > 0 and p["sklearn_tsne_extrapolated_s"] > 0
    assert {s["stage"] for s in res["stages"]} >= {"PCA", "k sweep", "neighbours", "2-D map", "thumbnails"}
    assert {r["algorithm"] for r in res["algorithms"]} == {"kmeans", "minibatch", "gmm", "birch", "ward", "hdbscan"}
    saved = json.loads((tmp_path / "benchmarks.json").read_text())
    assert saved["rows"] == res["rows"]
    assert "map worker" not in text  # a load this small makes its maps inline
    f = res["foundation"]
    assert f["wall_s"] > 0 and "--combine none --algorithms kmeans`: the four models" in text
    # its peer in the same run made the maps inline, as this small load does by default
    assert f["worker_peak_mb"] == 0 and f["peer"]["worker_peak_mb"] == 0 and f["peer"]["args"] == "--map-worker off"
    assert f["map_s"] > 0 and f["peer"]["map_s"] > 0 and "Its peer in the same run, `--map-worker off`" in text
    assert f"the thumbnail stage {f['thumbs_s']:.0f} s and {f['peer']['thumbs_s']:.0f} s." in text
    fs = res["firststart"]  # make run in a fresh clone: the first look, then the background load's build
    assert fs["images"] > 100 and fs["server_s"] <= fs["overview_s"] <= fs["full_s"]
    assert "Vehicle cluster explorer" in fs["overview_text"]
    assert fs["compare_has_combinations"]  # the background build, served without a restart
    assert "| **complete Overview** |" in text
    maps = {r["model"]: r for r in res["maps"]["rows"]}  # every realistic model, ours beside both peers
    assert set(maps) == {"osnet", "efficientnet-b7", "vdc_type", "noise"} and "## Maps on data with structure" in text
    assert maps["osnet"]["ours_q"] > 2 * maps["noise"]["ours_q"]  # the measure tells structure from none
    assert all(0 < r[q] <= 1 for r in maps.values() for q in ("ours_q", "opentsne_q", "umap_q"))
    nb = {r["model"]: r for r in res["neighbours"]}  # every model's table against exact search
    assert set(nb) == {r["model"] for r in res["ranks"]} and "## Neighbours" in text
    assert all(r["ours_recall"] >= 0.99 and 0 < r["defaults_recall"] <= 1 for r in nb.values())
    # the combinations start from their parts' tables of the same run, the models from trees
    assert {m for m, r in nb.items() if r["seeded"]} == {m for m in nb if "+" in m} != set()
    assert "| vdc_type+vdc_color * |" in text
    th = res["thumbnails"]  # the three decoders on the same images, through the loader's pool
    assert set(th["ways"]) == {"pillow", "simplejpeg", "pyvips"} and th["sample"] == 150 and th["source"] == "320×240"
    assert all(len(w["rounds_ms"]) == 3 and w["ms_per_image"] > 0 for w in th["ways"].values())
    assert all(w["same_status"] == 1 and w["same_colour"] >= 0.9 for w in th["ways"].values())
    assert "## Thumbnails: decoders" in text and "| pyvips |" in text
    assert "review" not in res and "## Review" not in text
    assert "## Targets (issue 15)" in text and "| first start: complete Overview ≤ 90 s |" in text


def test_bench_partial_run_keeps_the_other_parts_with_their_dates(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    args = ["--vehicles", "30", "--work", str(tmp_path / "work"), "--out", str(out), "--sample-peers",
            "--loader-args=--k-max 4 --map-iters 50 --model vdc_color --map-worker on"]
    first = main(args + ["--parts", "load,peers"])
    # the worker's memory counts with the loader's
    worker = max(s["peak_rss_mb"] for s in first["stages"] if s["stage"] == "2-D map")
    assert f"{(first['load_peak_mb'] + worker) / 1024:.2f} GiB peak resident memory** at most" in out.read_text()
    again = main(args + ["--parts", "peers"])
    assert again["load_wall_s"] == first["load_wall_s"]  # kept, not re-measured
    assert again["measured"]["load"] == first["measured"]["load"]
    assert "--parts peers" in again["measured"]["peers"]
    assert "--parts peers" in out.read_text() and "--parts load,peers" in out.read_text()


def test_growth_exponent_recovers_a_power_law():
    import numpy as np

    from bench.scaling import growth_exponent

    n = np.array([50_000, 100_000, 200_000, 416_000])
    assert abs(growth_exponent(n, 3e-4 * n**1.3) - 1.3) < 1e-9
    assert abs(growth_exponent(n, 7.0 * n) - 1.0) < 1e-9
    assert np.isnan(growth_exponent(n[:1], [1.0]))


def test_scaling_runs_and_reports_every_stage(tmp_path):
    from bench.scaling import main as scaling

    out = tmp_path / "SCALING.md"
    res = scaling(["--images", "300,700", "--work", str(tmp_path / "work"), "--out", str(out),
                   "--loader-args=--k-max 4 --map-iters 50 --model vdc_color --map-worker on"])
    rows = [r["rows"] for r in res["runs"]]
    assert rows[0] < rows[1]
    for stage in ("PCA", "k sweep", "neighbours", "2-D map", "thumbnails", "whole load"):
        assert stage in res["exponents"]
    assert "waiting for 2-D maps" not in res["exponents"]  # scaling times the maps inline, whatever it is given
    assert all(r["stages"]["thumbnails"]["cpu_seconds"] > 0 for r in res["runs"])
    text = out.read_text()
    assert "| **whole load** |" in text and "Past one machine" in text


def test_review_bench_counts_actions_and_checks_the_stored_verdicts(demo_db):
    from bench import review

    ways = review.measure(demo_db[0], verdicts=13)
    assert set(ways) == set(review.WAYS)
    for way, f in ways.items():
        assert f["verdicts"] == 13 and f["stored"] == 13, way  # each way really stored its verdicts
    # one per entry at least (a press or click lost while the page still ran is counted again)
    assert ways["keyboard"]["actions"] >= 13 and ways["one at a time"]["actions"] >= 13
    assert ways["bulk"]["actions"] < 13  # a rank range: the same count whatever its length
    text = "\n".join(review.section({"verdicts": 13, "ways": ways}))  # as `make bench` reports it
    assert "Verdicts for the first 13 flagged entries" in text
    assert all(f"| {way} | {f['actions']} | {f['seconds']:.1f} | {f['seconds_per_verdict']:.2f} | 13 |" in text
               for way, f in ways.items())


def test_the_targets_table_says_met_only_where_the_figure_meets_the_target():
    from bench import targets

    res = {"measured": {"firststart": "today by `python -m bench --parts firststart`"},
           "firststart": {"overview_s": 60.2, "full_s": 181.0},
           "foundation": {"wall_s": 700.0, "peak_mb": 5000.0, "worker_peak_mb": 800.0},
           "neighbours": [{"ours_recall": 0.995, "ours_s": 30.0, "defaults_s": 12.0},
                          {"ours_recall": 0.991, "ours_s": 20.0, "defaults_s": 10.0}]}
    got = {t: (figure, met) for t, figure, met, _ in targets.rows(res)}
    assert got["first start: complete Overview ≤ 90 s"] == ("60 s", True)
    assert got["first start: every page's data ≤ 180 s"] == ("181 s", False)
    assert got["foundation load ≤ 12 min"] == ("11.7 min", True)
    # 5,800 MiB
    assert got["foundation load ≤ 6 GB peak, the side process for the maps included"] == ("6.08 GB", False)
    assert got["neighbours: recall@10 ≥ 0.99 on every model"] == ("min 0.9910", True)
    assert got["neighbours: in no more time than pynndescent's defaults"] == ("50 s against 22 s", False)
    assert not any(t.startswith(("app", "maps", "thumbnails", "default")) for t in got)  # parts never measured
    text = "\n".join(targets.section(res))
    assert ("| first start: every page's data ≤ 180 s | 181 s | no | today by `python -m bench --parts firststart` |"
            in text)
    assert targets.section({}) == []
    # thumbnails: the stage in the load decides once it was measured, not the decoders alone
    res = {"thumbnails": {"ways": {"simplejpeg": {"ms_per_image": 0.25, "full_s": 104.0},
                                   "pillow": {"ms_per_image": 0.5, "full_s": 208.0}}}}
    assert dict((t, m) for t, _, m, _ in targets.rows(res)) == {"thumbnails ≤ 120 s": True}
    res["stages"] = [{"stage": "read descriptors", "seconds": 5.0}, {"stage": "PCA", "seconds": 20.0},
                     {"stage": "thumbnails", "seconds": 300.0}]
    (_, figure, met, _), = targets.rows(res)
    assert not met and figure == ("104 s decoding alone (extrapolated); the stage in the default load 300 s, "
                                  "after the models' stages")
    res["stages"].append({"stage": "waiting for 2-D maps", "seconds": 1.0})  # a load with the maps in a worker
    assert targets.rows(res)[0][1].endswith("the stage in the default load 300 s, beside the map worker")
    res["stages"] = [{"stage": "read paths", "seconds": 1.0}, {"stage": "thumbnails", "seconds": 110.0},
                     {"stage": "read descriptors", "seconds": 5.0}, {"stage": "waiting for 2-D maps", "seconds": 9.0}]
    (_, figure, met, _), = targets.rows(res)  # a load that makes them first: nothing beside them
    assert met and figure.endswith("the stage in the default load 110 s, first, before any other stage or map")
    res["foundation"] = {"wall_s": 600.0, "peak_mb": 4000.0, "worker_peak_mb": 500.0, "thumbs_s": 118.0,
                         "peer": {"thumbs_s": 125.0}}  # every load's stage must meet the target
    (_, figure, met, _), = (r for r in targets.rows(res) if r[0].startswith("thumbnails"))
    assert not met and figure.endswith("first, before any other stage or map; 118 s in the foundation load, "
                                       "125 s in its peer")
    res["foundation"]["peer"]["thumbs_s"] = 112.0
    assert next(r for r in targets.rows(res) if r[0].startswith("thumbnails"))[2]
