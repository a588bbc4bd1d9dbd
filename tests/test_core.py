"""Core steps against exact or reference answers."""
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.neighbors import LocalOutlierFactor

from lib import cluster, combine, embed, neighbors, outliers, realistic, reduce


def test_pca_matches_scikit_learn():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 40)) @ rng.normal(size=(40, 40))).astype(np.float32)
    model = reduce.fit_pca(X, target=0.9, chunk_rows=700)
    ref = PCA().fit(X.astype(np.float64))
    np.testing.assert_allclose(model.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-4)
    k = model.n_components
    at_90 = np.searchsorted(np.cumsum(ref.explained_variance_ratio_), 0.9) + 1
    floor = reduce.noise_floor_components(ref.explained_variance_, len(X))
    floor_keeps = np.cumsum(ref.explained_variance_ratio_)[floor - 1]
    assert k == max(2, min(at_90, floor) if floor_keeps >= reduce.FLOOR_MIN_VARIANCE else at_90)
    # same subspace: projections agree up to sign per component
    Z = reduce.transform(model, X, chunk_rows=500)
    Zr = ref.transform(X)[:, :k]
    for j in range(k):
        assert abs(np.corrcoef(Z[:, j], Zr[:, j])[0, 1]) > 0.999


def test_noise_floor_finds_the_signal_dimensions():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(5000, 6)) * np.array([9, 8, 7, 6, 5, 4])
    X = (np.hstack([signal, np.zeros((5000, 54))]) + rng.normal(size=(5000, 60))).astype(np.float32)
    model = reduce.fit_pca(X, target=0.99)  # 99% would keep noise dims; the floor stops at the signal
    assert model.n_components == 6


def test_a_flat_spectrum_is_not_cut_at_the_noise_floor():
    """Re-ID descriptors spread a car's identity over many dims: the floor would keep a few components
    and lose what tells two cars apart (measured: recall@10 0.03 at 2 dims, 0.96 at the 90% target)."""
    rng = np.random.default_rng(1)
    identity = rng.normal(size=(400, 48)) * (np.arange(1, 49) ** -0.5 * 3)
    X = (np.repeat(identity, 10, axis=0) + rng.normal(size=(4000, 48)) * 0.3).astype(np.float32)
    model = reduce.fit_pca(X, target=0.9)
    assert model.n_components >= 30
    vehicles = np.repeat(np.arange(400), 10)
    Z = reduce.transform(model, X)
    idx, _ = neighbors.exact_knn(Z, Z, 9, exclude_self=True)
    assert (vehicles[idx] == vehicles[:, None]).mean() > 0.9


def test_choose_components_rule():
    ratio = np.array([0.5, 0.3, 0.15, 0.05])
    assert reduce.choose_components(ratio, 0.8) == 2
    assert reduce.choose_components(ratio, 0.81) == 3
    assert reduce.choose_components(ratio, 0.99, max_components=2) == 2
    assert reduce.choose_components(np.array([0.99, 0.01, 0.0]), 0.5) == 2  # at least 2


def test_k_sweep_recovers_planted_k():
    X, _ = make_blobs(n_samples=4000, centers=7, n_features=10, cluster_std=1.0, random_state=3)
    scores = cluster.k_sweep(X.astype(np.float32), ks=range(2, 16), sample_size=3000, silhouette_size=1500)
    assert [s["k"] for s in scores] == list(range(2, 16))
    # the gap is computed for every k up to 10 and for the range's ends
    assert [s["k"] for s in scores if np.isfinite(s["gap"])] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 15]
    assert cluster.choose_k(scores) == 7


def test_choose_k_is_the_one_standard_error_rule():
    # the gap keeps rising after 5, but by less than one standard error: the rule stops at 5
    scores = [dict(k=k, gap=min(k, 5) + 0.01 * k, gap_se=0.05) for k in range(2, 10)]
    assert cluster.choose_k(scores) == 5
    # a gap that never beats k = 1 (all below 0): the rule says 1, an algorithm still gets its best cut
    scores = [dict(k=k, gap=-0.1 * k, gap_se=0.01) for k in range(2, 6)]
    assert cluster.one_se_rule([1] + [s["k"] for s in scores], [0] + [s["gap"] for s in scores],
                               [0] + [s["gap_se"] for s in scores]) == 1
    assert cluster.choose_k(scores) == 2


def test_knn_recall_against_exact():
    rng = np.random.default_rng(1)
    X, _ = make_blobs(n_samples=6000, centers=20, n_features=24, cluster_std=3.0, random_state=1)
    X = X.astype(np.float32)
    idx, dist = neighbors.build_knn(X, 20, random_state=0, exact_terms=0)  # pynndescent, not the exact path
    assert idx.shape == (6000, 20) and (idx != np.arange(6000)[:, None]).all()
    assert (np.diff(dist, axis=1) >= -1e-5).all()
    q = rng.choice(6000, 500, replace=False)
    exact_idx, _ = neighbors.exact_knn(X, X[q], 10, query_ids=q)
    assert neighbors.recall_at_k(idx[q], exact_idx, 10) >= 0.95


def test_knn_recall_on_re_id_like_descriptors():
    """L2-normalised rows with little structure beyond "photos of one car" (osnet-like) are where
    NN-descent stops early: with pynndescent's defaults recall@10 is about 0.92 here (0.909 on osnet at
    full scale); the parameters build_knn uses keep it at 0.99 or above."""
    from pynndescent import NNDescent

    rng = np.random.default_rng(0)
    n, d = 30000, 48
    cars = rng.normal(size=(n // 8, d))
    X = cars[rng.integers(0, len(cars), n)] + rng.normal(scale=0.9, size=(n, d))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    q = rng.choice(n, 1000, replace=False)
    exact_idx, _ = neighbors.exact_knn(X, X[q], 10, query_ids=q)
    idx, _ = neighbors.build_knn(X, 20, random_state=0, exact_terms=0)
    assert neighbors.recall_at_k(idx[q], exact_idx, 10) >= 0.99
    plain = NNDescent(X, n_neighbors=21, random_state=0, low_memory=True).neighbor_graph[0]
    assert neighbors.recall_at_k(plain[q, 1:], exact_idx, 10) < 0.96  # the data is hard enough to tell


def test_a_combination_starts_from_its_parts_neighbour_tables():
    """Realistic parts (re-ID-like unit rows, sparse non-negative CNN pooling, an unbalanced type head,
    bursts of near-copies): the combination's graph started from its parts' tables finds the exact
    neighbours, and it is the seeds it starts from: a useless start (the same far rows for everyone,
    no trees) leaves it lost."""
    D = realistic.descriptors(realistic.plan(2500, seed=0), seed=0)
    ok = np.all([np.isfinite(X).all(axis=1) for X in D.values()], axis=0)
    parts = [PCA(32, random_state=0).fit_transform(D[m][ok]).astype(np.float32)
             for m in ("osnet", "efficientnet-b7", "vdc_type")]
    Z, _ = combine.combine(parts)
    n = len(Z)
    assert n * n * Z.shape[1] > neighbors.EXACT_TERMS  # pynndescent builds it, not the exact search
    q = np.random.default_rng(0).choice(n, 1000, replace=False)
    exact, _ = neighbors.exact_knn(Z, Z[q], 10, query_ids=q)
    seeds = np.concatenate([neighbors.build_knn(P, 20, exact_terms=0)[0] for P in parts], axis=1)
    idx, dist = neighbors.build_knn(Z, 20, seeds=seeds)
    assert idx.shape == (n, 20) and (idx != np.arange(n)[:, None]).all()
    assert (np.diff(dist, axis=1) >= -1e-5).all()
    assert neighbors.recall_at_k(idx[q], exact, 10) >= 0.99
    far = np.tile(np.argsort(Z[:, 0])[-25:], (n, 1))
    assert neighbors.recall_at_k(neighbors.build_knn(Z, 20, seeds=far)[0][q], exact, 10) < 0.5
    with pytest.raises(ValueError, match="seeds has 10 rows"):
        neighbors.build_knn(Z, 20, seeds=seeds[:10])


def test_exact_knn_excludes_self():
    X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    idx, dist = neighbors.exact_knn(X, X, 5, exclude_self=True)
    assert (idx != np.arange(300)[:, None]).all()
    d_full = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(d_full, np.inf)
    np.testing.assert_allclose(dist[:, 0], d_full.min(axis=1), rtol=1e-4)
    q = np.random.default_rng(1).permutation(300)[:50]  # any rows, not the first ones
    idx_q, _ = neighbors.exact_knn(X, X[q], 5, query_ids=q)
    assert (idx_q != q[:, None]).all()
    np.testing.assert_array_equal(idx_q, idx[q])


def test_lof_from_table_matches_scikit_learn():
    X, _ = make_blobs(n_samples=800, centers=3, n_features=5, random_state=0)
    X = np.vstack([X, [[30, 30, 30, 30, 30]]]).astype(np.float32)
    idx, dist = neighbors.exact_knn(X, X, 10, exclude_self=True)
    ours = outliers.local_outlier_factor(idx, dist.astype(np.float64))
    ref = -LocalOutlierFactor(n_neighbors=10).fit(X).negative_outlier_factor_
    assert np.corrcoef(ours, ref)[0, 1] > 0.99
    assert ours.argmax() == len(X) - 1


def test_outlier_scores_find_planted_points():
    X, y = make_blobs(n_samples=2000, centers=4, n_features=8, random_state=2)
    rng = np.random.default_rng(2)
    far = rng.normal(size=(20, 8)) * 25
    Z = np.vstack([X, far]).astype(np.float32)
    vehicles = np.concatenate([np.arange(2000) // 10, 200 + np.arange(20)])
    idx, dist = neighbors.exact_knn(Z, Z, 20, exclude_self=True)
    labels, centers, _ = cluster.fit_kmeans(Z, 4)
    raw = outliers.all_scores(Z, idx, dist, labels, centers, vehicles)
    assert set(raw) == set(outliers.SCORES)
    _, log10_p = outliers.model_score(outliers.detector_z(raw))
    top = np.argsort(log10_p)[:40]
    assert np.isin(np.arange(2000, 2020), top).mean() >= 0.9
    flags = outliers.flagged_by(raw)
    assert all(flags[i] for i in range(2000, 2020) if log10_p[i] < np.quantile(log10_p, 0.01))


def test_vehicle_distance_leave_one_out():
    Z = np.array([[0, 0], [2, 0], [10, 10], [5, 5]], dtype=np.float32)
    d = outliers.vehicle_distance(Z, np.array([0, 0, 1, 2]))
    np.testing.assert_allclose(d[:2], [2, 2])
    assert d[2] == d[3] == 2  # single-photo vehicles get the median


def test_percentile_rank():
    r = outliers.percentile_rank(np.array([3.0, 1.0, 2.0, 2.0]))
    np.testing.assert_allclose(r, [1.0, 0.25, 0.75, 0.75])


def test_map_preserves_neighbours_better_than_chance():
    X, _ = make_blobs(n_samples=3000, centers=6, n_features=10, random_state=4)
    X = X.astype(np.float32)
    idx, dist = neighbors.exact_knn(X, X, 20, exclude_self=True)
    Y = embed.tsne_map(X, idx, dist, n_iter=150, exaggeration_iter=150, random_state=0)
    assert Y.shape == (3000, 2) and np.isfinite(Y).all()
    kept = embed.knn_preservation(X, Y, n_samples=500)
    rand = embed.knn_preservation(X, np.random.default_rng(0).normal(size=(3000, 2)), n_samples=500)
    assert kept > 0.15 > rand
    assert embed.knn_preservation(X, X, n_samples=200) == pytest.approx(1.0)


def test_a_map_beside_the_loader_takes_one_thread_until_the_map_is_large():
    # a small map's threads only wait on each other while the loader keeps the cores busy
    assert embed.worker_threads(6_132, 2) == 1
    assert embed.worker_threads(embed.WORKER_THREAD_ROWS - 1, 2) == 1
    assert embed.worker_threads(414_575, 2) == 2 and embed.worker_threads(414_575, 1) == 1
