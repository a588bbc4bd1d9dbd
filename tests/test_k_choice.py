"""Honest k: the gap statistic, its one-standard-error rule, the verdict and the notes at the range's ends.

In-memory on descriptors shaped like the real set (lib.realistic) and on exact small cases. No test
depends on which exact k a machine picks.
"""
import ast
import pathlib

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from lib import cluster, descriptors, realistic, reduce

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reduced():
    """Every realistic model, broken rows repaired as the loader does, PCA-reduced."""
    p = realistic.plan(200, seed=3)
    out = {}
    for model, X in realistic.descriptors(p, seed=3).items():
        X, _ = descriptors.validate(X, model)
        out[model] = reduce.transform(reduce.fit_pca(X), X)
    return out


def test_pure_noise_has_no_structure(reduced):
    c = cluster.choose(reduced["noise"], ks=range(2, 16))
    assert c.structure == "none"
    assert c.k >= 2  # the pages still get clusters
    assert "no cluster structure" in c.note
    # every gap over one cluster is small: nothing beats structureless data
    gaps = [r["gap"] for r in c.scores if np.isfinite(r["gap"])]
    assert max(gaps) < cluster.GAP_CLEAR


def test_clear_classes_are_clear(reduced):
    c = cluster.choose(reduced["vdc_type"], ks=range(2, 16))
    assert c.structure == "clear"
    assert c.rule_k >= 2 and c.k == c.rule_k
    assert c.gap > cluster.GAP_CLEAR and c.gap > cluster.GAP_SE_MIN * c.gap_se


def test_planted_blobs_are_found_and_sure():
    X, _ = make_blobs(n_samples=3000, centers=5, n_features=6, cluster_std=0.5, center_box=(-20, 20),
                      random_state=0)
    c = cluster.choose(X.astype(np.float32), ks=range(2, 12), sample_size=3000, silhouette_size=1000)
    assert c.k == 5 and c.structure == "clear" and c.note is None
    by_k = {r["k"]: r for r in c.scores}
    assert by_k[5]["gap"] > by_k[4]["gap"] + by_k[5]["gap_se"]  # the step to 5 is well beyond the noise


def test_best_k_at_the_ceiling_is_widened_and_noted():
    # seven planted groups, a range that stops at 4: the best k is the ceiling, so the range is widened once
    X, _ = make_blobs(n_samples=3000, centers=7, n_features=6, cluster_std=0.5, center_box=(-20, 20),
                      random_state=1)
    c = cluster.choose(X.astype(np.float32), ks=range(2, 5), sample_size=3000, silhouette_size=1000)
    assert c.note and "end of the range" in c.note and "widened" in c.note
    assert c.widened_to == 8 and max(r["k"] for r in c.scores) == 8
    assert c.k > 4  # the widened range's answer is used


def test_a_gap_still_rising_after_widening_is_weak_and_says_so():
    # many small groups, a tiny range: even widened to twice its end the gap keeps rising
    X, _ = make_blobs(n_samples=3000, centers=16, n_features=10, cluster_std=0.3, center_box=(-30, 30),
                      random_state=2)
    c = cluster.choose(X.astype(np.float32), ks=range(2, 4), sample_size=3000, silhouette_size=1000)
    assert c.k == c.widened_to == 6
    assert c.structure == "weak" and "still rises" in c.note and "not a k the data chose" in c.note


def test_a_range_of_one_k_is_kept_not_widened():
    # the user fixed k (--k-min 4 --k-max 4): the answer is that k, whatever the data would have chosen
    X, _ = make_blobs(n_samples=2000, centers=7, n_features=6, cluster_std=0.5, center_box=(-20, 20),
                      random_state=1)
    c = cluster.choose(X.astype(np.float32), ks=(4,), sample_size=2000, silhouette_size=1000)
    assert c.k == 4 and c.widened_to is None and [r["k"] for r in c.scores] == [4]
    assert "was given" in c.note and c.structure in ("clear", "weak")


def test_best_k_at_the_start_of_a_range_above_two_is_noted():
    X, _ = make_blobs(n_samples=2000, centers=3, n_features=5, cluster_std=0.5, center_box=(-20, 20),
                      random_state=4)
    c = cluster.choose(X.astype(np.float32), ks=range(5, 9), sample_size=2000, silhouette_size=1000)
    assert c.k == 5 and "start of the range" in c.note


def test_one_standard_error_rule_and_verdict_on_exact_numbers():
    # the gap rises to 3, then by less than one SE: 3
    assert cluster.one_se_rule([1, 2, 3, 4, 5], [0, 0.5, 1.0, 1.02, 1.03], [0, 0.05, 0.05, 0.05, 0.05]) == 3
    # falls from the start: 1 (no structure)
    assert cluster.one_se_rule([1, 2, 3], [0, -0.2, -0.3], [0, 0.01, 0.01]) == 1
    # rises all the way: the last k
    assert cluster.one_se_rule([1, 2, 3], [0, 0.5, 1.0], [0, 0.01, 0.01]) == 3
    assert cluster.verdict(1, 0.0, 0.01) == "none"
    assert cluster.verdict(4, 0.015, 0.01) == "none"  # within 2 SE of one cluster
    assert cluster.verdict(4, 0.05, 0.01) == "weak"   # real but small
    assert cluster.verdict(4, 0.5, 0.01) == "clear"
    assert cluster.verdict(4, 0.5, 0.01, at_end=True) == "weak"


def test_log_dispersion_is_the_within_cluster_sum_of_squares_per_row():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 14.0], [99.0, 99.0]])
    labels = np.array([0, 0, 1, 1, -1])  # the noise row is left out
    w = (1 + 1) + (4 + 4)
    assert cluster.log_dispersion(X, labels) == pytest.approx(np.log(w / 4))
    whole = ((X - X.mean(0)) ** 2).sum()
    assert cluster.log_dispersion(X) == pytest.approx(np.log(whole / 5))


def test_reference_draws_fill_the_principal_component_box():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(5000, 3)) * [5.0, 1.0, 0.1]
    draws = cluster.reference_draws(S, n_draws=3, rows=800, random_state=0)
    lo, hi = np.percentile(S, cluster.GAP_BOX_PERCENTILES, axis=0)
    assert len(draws) == 3 and all(d.shape == (800, 3) for d in draws)
    for d in draws:
        assert (d >= lo).all() and (d <= hi).all()
        np.testing.assert_allclose(d.std(axis=0), (hi - lo) / np.sqrt(12), rtol=0.1)  # uniform, not Gaussian
    assert not np.allclose(draws[0], draws[1])


def test_the_sweep_stores_gap_and_its_standard_error():
    X, _ = make_blobs(n_samples=1500, centers=3, n_features=4, random_state=5)
    rows = cluster.k_sweep(X.astype(np.float32), ks=range(2, 13), sample_size=1500, silhouette_size=500)
    assert [r["k"] for r in rows] == list(range(2, 13))
    assert set(rows[0]) == {"k", "calinski_harabasz", "davies_bouldin", "silhouette", "inertia", "gap", "gap_se"}
    with_gap = [r["k"] for r in rows if np.isfinite(r["gap"])]
    assert with_gap == cluster.gap_ks(range(2, 13)) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert all(r["gap_se"] > 0 for r in rows if np.isfinite(r["gap"]))


def _imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
            names.update(f"{'.' * node.level}{node.module or ''}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_imports_run_one_way_and_no_private_scikit_learn():
    cluster_imports = _imports(ROOT / "lib" / "cluster.py")
    assert not any("algorithms" in i or "evidence" in i for i in cluster_imports), cluster_imports
    for path in (ROOT / "lib").glob("*.py"):
        for name in _imports(path):
            assert not any(part.startswith("_") and not part.startswith("__")
                           for part in name.lstrip(".").split(".")[1:] if name.startswith("sklearn")), (path, name)


def test_rule_looks_past_a_flat_start():
    # two clusters barely beat one (0.026 < its SE), four beat one by far: the rule must not stop at 1
    # (the numbers of a real sweep: 4 blobs in two close pairs, where Tibshirani's first-maximum form said k = 1)
    ks, gaps, ses = [1, 2, 3, 4, 5], [0, 0.026, 0.889, 3.52, 3.446], [0, 0.028, 0.03, 0.036, 0.035]
    assert cluster.one_se_rule(ks, gaps, ses) == 4
    assert cluster.verdict(4, 3.52, 0.05) == "clear"


def test_sweep_silhouette_from_shared_distances_equals_scikit_learns():
    # the sweep computes the silhouette sample's distances once; every k must still score as
    # scikit-learn does on the raw rows (unbalanced blobs, a sample smaller than the rows)
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    X, _ = make_blobs(n_samples=[900, 300, 60], n_features=12, cluster_std=2.0, random_state=3)
    rows = cluster.k_sweep(X.astype(np.float32), ks=(2, 3, 5), sample_size=1000, silhouette_size=400)
    S = X[cluster.sample_rows(len(X), 1000, 0)]
    sil = S[cluster.sample_rows(len(S), 400, 1)]
    for r in rows:
        labels = KMeans(n_clusters=r["k"], n_init=cluster.SWEEP_N_INIT, random_state=0).fit(S).labels_
        expected = silhouette_score(sil, labels[cluster.sample_rows(len(S), 400, 1)])
        assert abs(r["silhouette"] - expected) < 1e-4, r["k"]


def test_the_sweep_on_two_threads_is_the_sweep_one_k_at_a_time(reduced, monkeypatch):
    # each k's fits carry their own seed: which thread fits which k changes nothing, widening included
    answers = []
    for threads in (1, 2):
        monkeypatch.setattr(cluster, "SWEEP_THREADS", threads)
        done = []
        c = cluster.choose(reduced["osnet"], ks=range(2, 12), progress=done.append)
        answers.append(repr((c.k, c.structure, c.widened_to, c.scores)))  # repr: a NaN score equals itself
        assert len(done) == len(c.scores)  # one progress step per k, from the caller's thread
    assert answers[0] == answers[1]
