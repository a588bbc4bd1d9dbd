"""Clustering algorithms, combinations and evidence on small inputs with known answers."""
import time

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.neighbors import kneighbors_graph

from lib import algorithms, cluster, combine, evidence, neighbors
from lib.descriptors import InputError


def blobs(n=1500, centers=5, dims=8, seed=0, std=1.0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=dims, cluster_std=std, random_state=seed)
    return X.astype(np.float32), y


def inputs(X, k=15):
    idx, dist = neighbors.exact_knn(X, X, k, exclude_self=True)
    sweep_idx = cluster.sample_rows(len(X), 1000, 0)
    sil_idx = cluster.sample_rows(len(sweep_idx), 500, 1)
    # the KMeans sweep's structureless reference, which every algorithm's k is chosen against
    reference = cluster.GapReference(X[sweep_idx], rows=1000).add(range(2, 9))
    return idx, dist, sweep_idx, sil_idx, reference


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_ward_matches_scikit_learn_with_knn_connectivity(k):
    X, _ = blobs(n=600, centers=4, std=2.5)
    idx, dist = neighbors.exact_knn(X, X, 10, exclude_self=True)
    graph = algorithms.knn_graph(X, idx, dist)
    assert algorithms.connected_components(graph)[0] == 1
    mine = algorithms.cut_tree(algorithms.ward_tree(X, graph), len(X), k)
    ref = AgglomerativeClustering(k, linkage="ward",
                                  connectivity=kneighbors_graph(X, 10, include_self=False)).fit_predict(X)
    assert len(np.unique(mine)) == k
    assert ari(mine, ref) == pytest.approx(1.0)


def test_ward_from_leaves_labels_every_row(monkeypatch):
    X, y = blobs(n=3000, centers=5)
    monkeypatch.setattr(algorithms, "WARD_EXACT_ROWS", 500)
    idx, dist, sweep_idx, sil_idx, null_ch = inputs(X)
    leaf, means, sizes, graph = algorithms.ward_leaves(X, idx, dist, max_leaves=200)
    assert len(means) <= 200 and sizes.sum() == len(X) and len(leaf) == len(X)
    run = algorithms.run("ward", X, idx, dist, range(2, 9), null_ch, sweep_idx, sil_idx)
    assert run.n_clusters == 5 and ari(run.labels, y) > 0.95 and run.params["leaves"] <= 2000


def test_knn_graph_joins_far_apart_groups():
    X = np.vstack([np.zeros((20, 2)), np.full((20, 2), 100.0)]).astype(np.float32)
    X += np.random.default_rng(0).normal(size=X.shape).astype(np.float32)
    idx, dist = neighbors.exact_knn(X, X, 5, exclude_self=True)
    G = algorithms.knn_graph(X, idx, dist)
    assert algorithms.connected_components(G)[0] == 1
    assert abs(G - G.T).max() == 0


@pytest.mark.parametrize("name", ["minibatch", "gmm", "birch", "ward"])
def test_algorithms_find_planted_blobs(name):
    X, y = blobs()
    idx, dist, sweep_idx, sil_idx, null_ch = inputs(X)
    t = time.perf_counter()
    run = algorithms.run(name, X, idx, dist, range(2, 9), null_ch, sweep_idx, sil_idx)
    wall = time.perf_counter() - t
    assert run.params["k"] == 5 and run.n_clusters == 5
    assert ari(run.labels, y) > 0.95
    assert run.noise_share == 0
    assert 0 < run.seconds <= wall  # the run's own time, measured around the sweep and the fit
    # the sweep visits every k of the range, or (fit-per-k algorithms) its thinning, both ends kept
    assert [r["value"] for r in run.sweep] == (algorithms.coarse(range(2, 9)) if name in ("minibatch", "gmm")
                                              else list(range(2, 9)))


def test_hdbscan_marks_scattered_points_as_noise():
    X, y = blobs(n=1500, centers=4, std=0.6)
    rng = np.random.default_rng(0)
    scatter = rng.uniform(X.min(0) - 5, X.max(0) + 5, size=(150, X.shape[1])).astype(np.float32)
    X = np.vstack([X, scatter])
    idx, dist, sweep_idx, sil_idx, null_ch = inputs(X)
    run = algorithms.run("hdbscan", X, idx, dist, range(2, 9), null_ch, sweep_idx, sil_idx)
    noise = run.labels < 0
    assert run.n_clusters == 4
    assert noise[1500:].mean() > 0.8 and noise[:1500].mean() < 0.05
    assert ari(run.labels[:1500], y) > 0.95
    assert 0 < run.noise_share < 0.2


def test_algorithm_names_are_checked():
    assert algorithms.parse("Ward, kmeans,ward") == ("ward", "kmeans")
    with pytest.raises(ValueError, match="unknown algorithm.*dbscan"):
        algorithms.parse("kmeans,dbscan")


def test_centre_distance_and_margin():
    Z = np.array([[0, 0], [0, 2], [10, 0], [10, 2], [5, 1]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 0], dtype=np.int32)
    own, margin = algorithms.centre_distances(Z, labels)
    centre0 = Z[[0, 1, 4]].mean(0)
    assert own[4] == pytest.approx(np.linalg.norm(Z[4] - centre0), abs=1e-5)
    assert np.argmin(margin) == 4  # the point half-way is on the boundary


def test_combination_blocks_weigh_the_same():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 10)) * 50
    b = rng.normal(size=(500, 3)) * 0.1
    Z, weights = combine.combine([a, b])
    assert Z.shape == (500, 13)
    for block in (Z[:, :10], Z[:, 10:]):
        assert block.var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    assert weights[0] == pytest.approx(1 / np.sqrt(a.var(axis=0).sum()))


def test_combinations_resolve():
    models = ["efficientnet-b7", "osnet", "vdc_color", "vdc_type"]
    assert combine.resolve(None, models, "d") == list(combine.DEFAULTS)
    assert combine.resolve(None, ["vdc_type", "vdc_color"], "d") == ["vdc_type+vdc_color"]  # the 4-way one skipped
    assert combine.resolve((), models, "d") == []
    assert combine.resolve(["osnet + vdc_type"], models, "d") == ["osnet+vdc_type"]
    with pytest.raises(InputError, match="no descriptor file for mdc_type"):
        combine.resolve(["osnet+mdc_type"], models, "d")
    with pytest.raises(InputError, match="two or more"):
        combine.resolve(["osnet+osnet"], models, "d")


def test_same_vehicle_recall_and_consistency():
    vehicles = np.array([0, 0, 0, 1, 1, 2])
    # neighbours: image 0 finds both others of vehicle 0, image 3 finds none of its one other
    knn = np.array([[1, 2], [0, 3], [3, 4], [0, 1], [3, 0], [0, 1]])
    # per image with others: 0 -> 2/2, 1 -> 1/2, 2 -> 0/2, 3 -> 0/1, 4 -> 1/1
    assert evidence.same_vehicle_recall(knn, vehicles, k=2) == pytest.approx((1 + 0.5 + 0 + 0 + 1) / 5)
    labels = np.array([0, 0, 1, 1, -1, 0])
    # vehicle 0: 2 of 3 in cluster 0; vehicle 1: 1 of 2 (noise never a majority); vehicle 2 has 1 photo
    assert evidence.vehicle_consistency(labels, vehicles) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_stability_separates_structure_from_noise():
    X, _ = blobs(n=3000, centers=4, std=0.5)
    noise = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    assert evidence.stability(X, 4, sample_size=1500) > 0.95
    assert evidence.stability(noise, 4, sample_size=1500) < evidence.stability(X, 4, sample_size=1500)


def test_groups_ranking_puts_the_worst_last_and_says_why():
    import pandas as pd

    # the noise has the best silhouette (as a Gaussian cut into cells does), and no structure: last anyway
    table = pd.DataFrame({"model": ["good", "noise", "fair"], "structure": ["clear", "none", "weak"],
                          "chosen_k": [6, 3, 8], "gap_at_k": [0.9, 0.0, 0.05], "gap_se_at_k": [0.01] * 3,
                          "consistency_kappa": [0.6, 0.0, 0.3], "stability_ari": [0.95, 0.2, 0.9],
                          "silhouette": [0.3, 0.4, 0.35], "color_nmi": [None] * 3})
    place, reasons = evidence.rank_groups(table)
    assert place == {"good": 1, "fair": 2, "noise": 3}
    assert "best on chance-corrected consistency, stability" in reasons["good"]
    assert "never recommended" in reasons["noise"] and "not measured: agreement with colour" in reasons["good"]


def test_birch_sweep_cuts_the_same_global_ward_as_scikit_learn():
    from sklearn.cluster import Birch

    X, _ = blobs(n=3000, centers=6, std=2.0, seed=1)
    idx, dist, sweep_idx, sil_idx, null_ch = inputs(X)
    run = algorithms.run("birch", X, idx, dist, range(2, 9), null_ch, sweep_idx, sil_idx)
    ref = Birch(threshold=run.params["threshold"], n_clusters=run.params["k"]).fit(X).labels_
    assert ari(run.labels, ref) == pytest.approx(1.0)
