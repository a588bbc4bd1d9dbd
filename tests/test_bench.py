"""`make bench` at toy scale, so the script cannot rot (CI has no time for the full run)."""
import json

from bench.__main__ import main


def test_bench_runs_end_to_end_and_reports(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    res = main(["--vehicles", "40", "--work", str(tmp_path / "work"), "--out", str(out), "--sample-peers",
                "--loader-args=--k-max 6 --map-iters 60"])
    text = out.read_text()
    for section in ("## Loader", "## Peers", "## App", "scikit-learn TSNE", "extrapolated", "recall@10",
                    "## Clustering algorithms", "| hdbscan |", "Ranking ("):
        assert section in text
    assert res["rows"] > 300 and res["load_peak_mb"] > 50
    p = res["peers"]
    assert p["recall_at_10"] >= 0.95  # the stored table against brute force
    assert p["agglomerative_gib"] > 0 and p["sklearn_tsne_extrapolated_s"] > 0
    assert {s["stage"] for s in res["stages"]} >= {"PCA", "k sweep", "neighbours", "2-D map", "thumbnails"}
    assert {r["algorithm"] for r in res["algorithms"]} == {"kmeans", "minibatch", "gmm", "birch", "ward", "hdbscan"}
    saved = json.loads((tmp_path / "benchmarks.json").read_text())
    assert saved["rows"] == res["rows"]
