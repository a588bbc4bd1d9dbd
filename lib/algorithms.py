"""Clustering algorithms beside KMeans, each fitted on all rows.

Every algorithm gets the same inputs (a model's reduced vectors, its
neighbour table, the k-sweep sample) and returns a :class:`Run`: labels for
every row (-1 = noise, HDBSCAN only), the parameter it chose, its sweep and
its run time. Ward and HDBSCAN work on the pynndescent neighbour table the
load already builds, so neither needs the n x n distance matrix that made
full-matrix agglomerative clustering need 646 GiB at 416k rows.

A run can be degenerate (:func:`degenerate_reason`: almost all noise, one
giant cluster, a cluster per point, fewer than two clusters); it is stored
with the reason and never offered as a model's answer.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from . import cluster
from .cluster import one_thread  # noqa: F401  (lives in lib.cluster: imports run algorithms -> cluster only)

ALGORITHMS = ("kmeans", "minibatch", "gmm", "birch", "ward", "hdbscan")
DEFAULT = "kmeans"  # what `assignments` holds: centre-based, so new images go to the nearest centre
LABELS = {"kmeans": "KMeans", "minibatch": "MiniBatchKMeans", "gmm": "Gaussian mixture (diag)",
          "birch": "Birch", "ward": "Ward (kNN connectivity)", "hdbscan": "HDBSCAN"}
GMM_SWEEP_ROWS = 10000           # EM per k is the dearest sweep step; a smaller sample keeps it seconds
BIRCH_SAMPLE_SUBCLUSTERS = 1000  # on the sweep sample; all rows make more (Ward on them is m^2)
WARD_EXACT_ROWS = 10000          # up to here Ward starts from the rows themselves (exact)
WARD_LEAVES = 2000               # above, from this many KMeans groups (see ward_leaves)
HDBSCAN_SHARES = (0.002, 0.005, 0.01, 0.02, 0.05)  # min_cluster_size as a share of the rows
HDBSCAN_MIN_SAMPLES = 10
SWEEP_SILHOUETTE_ROWS = 2000
# degenerate runs (see degenerate_reason)
DEGENERATE_NOISE = 0.9      # this share of noise rows or more
DEGENERATE_GIANT = 0.95     # one cluster holds this share of the non-noise rows or more
DEGENERATE_PER_POINT = 0.5  # clusters >= this share of the rows: about one cluster per point


@dataclass
class Run:
    """One algorithm's clustering of all rows."""

    algorithm: str
    labels: np.ndarray          # int32, -1 = noise
    params: dict
    seconds: float
    sweep: list = field(default_factory=list)  # dicts: value, n_clusters, noise_share, scores

    @property
    def n_clusters(self):
        return int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0

    @property
    def noise_share(self):
        return float((self.labels < 0).mean())

    @property
    def degenerate(self):
        """Why this run is no answer (:func:`degenerate_reason`), or None if it is fine."""
        return degenerate_reason(self.labels)


def degenerate_reason(labels):
    """Why a clustering is degenerate, as one line; None if it is not.

    Degenerate: noise share >= :data:`DEGENERATE_NOISE` (HDBSCAN gave 100% noise
    on osnet at full scale), fewer than two clusters, about one cluster per
    point (clusters >= :data:`DEGENERATE_PER_POINT` of the rows), or one
    cluster holding >= :data:`DEGENERATE_GIANT` of the non-noise rows.

    Parameters
    ----------
    labels : numpy.ndarray of int, -1 = noise

    Returns
    -------
    str or None
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return "no rows"
    clustered = labels[labels >= 0]
    noise = 1 - len(clustered) / n
    if noise >= DEGENERATE_NOISE:
        return f"{noise:.0%} of the rows are noise (threshold {DEGENERATE_NOISE:.0%})"
    sizes = np.unique(clustered, return_counts=True)[1]
    if len(sizes) < 2:
        return f"{len(sizes)} cluster{'' if len(sizes) == 1 else 's'}: nothing is separated"
    if len(sizes) >= DEGENERATE_PER_POINT * n:
        return f"{len(sizes):,} clusters for {n:,} rows: about one cluster per point"
    giant = sizes.max() / len(clustered)
    if giant >= DEGENERATE_GIANT:
        return (f"one cluster holds {giant:.1%} of the clustered rows (threshold {DEGENERATE_GIANT:.0%}): "
                "the rest are crumbs")
    return None


def parse(spec):
    """``"kmeans,ward"`` -> ``("kmeans", "ward")``; ValueError naming an unknown one."""
    names = tuple(dict.fromkeys(s.strip().lower() for s in str(spec).split(",") if s.strip()))
    unknown = [a for a in names if a not in ALGORITHMS]
    if unknown or not names:
        raise ValueError(f"unknown algorithm(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(ALGORITHMS)}")
    return names


# the neighbour graph as a sparse matrix

def knn_graph(Z, knn_idx, knn_dist):
    """Symmetric sparse distance graph of the neighbour table, made connected (:func:`connect`)."""
    n, k = knn_idx.shape
    rows = np.repeat(np.arange(n, dtype=np.int32), k)
    # a zero distance would vanish from the sparse matrix: duplicates get a tiny one
    d = np.maximum(knn_dist.reshape(-1).astype(np.float64), 1e-9)
    G = sp.csr_matrix((d, (rows, knn_idx.reshape(-1))), shape=(n, n))
    return connect(G.maximum(G.T).tocsr(), Z)


def connect(G, points):
    """Join the components of a symmetric graph into one.

    Components (isolated groups such as near-duplicate photos) are joined by
    a minimum spanning tree over one representative per component, the row
    nearest its component's mean, with the true distance as edge weight. That
    costs m^2 for m components, where scikit-learn's own completion compares
    every pair of rows across components.
    """
    n = G.shape[0]
    n_comp, comp = connected_components(G, directed=False)
    if n_comp == 1:
        return G
    reps = np.empty(n_comp, dtype=np.int64)
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(n_comp + 1))
    for c in range(n_comp):
        members = order[bounds[c]:bounds[c + 1]]
        P = points[members]
        reps[c] = members[np.argmin(((P - P.mean(axis=0)) ** 2).sum(axis=1))]
    R = points[reps].astype(np.float64)
    D = np.sqrt(np.maximum(((R[:, None, :] - R[None, :, :]) ** 2).sum(-1), 1e-18))
    tree = sp.csgraph.minimum_spanning_tree(sp.csr_matrix(np.triu(D, 1))).tocoo()
    extra = sp.csr_matrix((tree.data, (reps[tree.row], reps[tree.col])), shape=(n, n))
    return G.maximum(extra).maximum(extra.T).tocsr()


# the algorithms

def run(algorithm, Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, random_state=0,
        kmeans_result=None):
    """Fit one algorithm on all rows, after sweeping its parameter.

    Parameters
    ----------
    algorithm : str, one of :data:`ALGORITHMS`
    Z : numpy.ndarray, shape (n, d), float32
    knn_idx, knn_dist : numpy.ndarray, shape (n, k)
        The neighbour table (self excluded).
    ks : sequence of int
        The k values to sweep.
    reference : lib.cluster.GapReference
        The structureless reference of the KMeans sweep (:func:`lib.cluster.choose`),
        so every algorithm's k is chosen by the same gap rule against the same
        draws (:func:`lib.cluster.choose_k`); only the k it holds can be chosen.
    sweep_idx, sil_idx : numpy.ndarray
        Rows of the sweep sample, and rows of that sample for silhouette
        (the sweep scores silhouette on at most :data:`SWEEP_SILHOUETTE_ROWS`
        of them: it is the dearest score, computed once per k).
    random_state : int
    kmeans_result : tuple, optional
        ``(labels, k, k sweep rows, seconds)`` of the KMeans the load already ran; reused.

    Returns
    -------
    Run
    """
    t = time.perf_counter()
    if algorithm == "kmeans":
        labels, k, k_sweep, seconds = kmeans_result
        sweep = [dict(r, value=r["k"], n_clusters=r["k"], noise_share=0.0, sample_rows=len(sweep_idx))
                 for r in k_sweep]
        params = {"k": int(k), "n_init": cluster.RESTARTS, "restart_rows": cluster.RESTART_SAMPLE}
        return Run("kmeans", labels, params, seconds, sweep)
    fn = {"minibatch": _minibatch, "gmm": _gmm, "birch": _birch, "ward": _ward, "hdbscan": _hdbscan}[algorithm]
    sil_idx = sil_idx[cluster.sample_rows(len(sil_idx), SWEEP_SILHOUETTE_ROWS, random_state + 3)]
    labels, params, sweep = fn(Z, knn_idx, knn_dist, list(ks), reference, sweep_idx, sil_idx, random_state)
    return Run(algorithm, np.asarray(labels, dtype=np.int32), params, time.perf_counter() - t, sweep)


def _sweep_row(value, S, L, sil_idx, reference=None, rs=0):
    with one_thread():
        scores = cluster.label_scores(S, L, sil_idx)
    row = dict(value=int(value), n_clusters=int(len(np.unique(L[L >= 0]))), noise_share=float((L < 0).mean()),
               sample_rows=len(S), **scores)
    if reference is not None:
        row["gap"], row["gap_se"] = reference.gap_of(S, L, int(value), rs)
    return row


def _choose(sweep):
    """The gap rule's k over the sweep rows that made 2+ clusters (:func:`lib.cluster.choose_k`)."""
    usable = [r for r in sweep if r["n_clusters"] >= 2 and np.isfinite(r["calinski_harabasz"])]
    return cluster.choose_k([dict(r, k=r["value"]) for r in usable])


def coarse(ks):
    """The k values a fit-per-k sweep visits: every k up to 10, then multiples of 5,
    and always both ends of the requested range (so no range is thinned to nothing).

    Algorithms that refit for every k (MiniBatchKMeans, Gaussian mixture)
    take half the fits; the choice of k barely moves between neighbouring
    large k.
    """
    ks = list(ks)
    ends = {min(ks), max(ks)} if ks else set()
    return [k for k in ks if k <= 10 or k % 5 == 0 or k in ends]


def _minibatch(Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, rs):
    from sklearn.cluster import MiniBatchKMeans

    S = Z[sweep_idx]
    sweep = []
    with one_thread():
        for k in coarse(ks):
            L = MiniBatchKMeans(k, batch_size=4096, n_init=1, random_state=rs).fit_predict(S)
            sweep.append(_sweep_row(k, S, L, sil_idx, reference, rs))
    k = _choose(sweep)
    labels = MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=rs).fit_predict(Z)
    return labels, {"k": k, "batch_size": 4096, "n_init": 3}, sweep


def _gmm(Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, rs):
    from sklearn.mixture import GaussianMixture

    sub = cluster.sample_rows(len(sweep_idx), GMM_SWEEP_ROWS, rs)
    S = Z[sweep_idx[sub]]
    sil = cluster.sample_rows(len(S), len(sil_idx), rs + 1)  # as many as the others score on
    sweep = []
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capped EM on a sample
        for k in coarse(ks):
            gm = GaussianMixture(k, covariance_type="diag", max_iter=100, random_state=rs).fit(S)
            sweep.append(_sweep_row(k, S, gm.predict(S), sil, reference, rs))
    k = _choose(sweep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped EM that did not converge still labels every row
        gm = GaussianMixture(k, covariance_type="diag", max_iter=100, random_state=rs).fit(Z)
    return gm.predict(Z), {"k": k, "covariance_type": "diag", "max_iter": 100, "converged": bool(gm.converged_),
                           "sweep_rows": int(len(S))}, sweep


def birch_threshold(knn_dist, n_rows, max_subclusters=BIRCH_SAMPLE_SUBCLUSTERS):
    """Birch's first subcluster radius from the neighbour table.

    Scaled to the data (the median distance to the farthest stored
    neighbour) and grown slowly with the rows; :func:`_birch` then adjusts it
    on the sweep sample until the number of subclusters, which Birch's global
    step clusters with a full-matrix Ward, is between twice the largest k and
    :data:`BIRCH_SAMPLE_SUBCLUSTERS`.
    """
    base = float(np.median(knn_dist[:, -1]))
    return base * max(1.0, (n_rows / (50 * max_subclusters)) ** (1 / 8))


def _birch(Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, rs):
    from sklearn.cluster import Birch

    thr = birch_threshold(knn_dist, len(Z))
    want = min(2 * max(ks), len(Z))  # enough subclusters for the global step to make every k
    S = Z[sweep_idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer subclusters than k: Birch says so, the sweep records it
        # the radius is searched on the sweep sample (a CF-tree with thousands of
        # subclusters in 64 dims costs minutes per fit at 416k rows), then one fit on
        # all rows. The count falls off a cliff as the radius grows in high dims, so
        # the search brackets the target range and bisects (on a log scale).
        lo, hi = 0.0, np.inf  # radii known to give too many / too few subclusters
        for _ in range(16):
            m = len(Birch(threshold=thr, n_clusters=None).fit(S).subcluster_centers_)
            if m > BIRCH_SAMPLE_SUBCLUSTERS:
                lo = thr
            elif m < want:
                hi = thr
            else:
                break
            thr = np.sqrt(lo * hi) if lo > 0 and np.isfinite(hi) else (thr * 2 if m > want else thr / 2)
        else:
            thr = lo if lo > 0 else thr  # no radius in range: rather too many subclusters than too few
        b = Birch(threshold=thr, n_clusters=None).fit(Z)
        nearest_sub = b.predict(Z)  # n_clusters=None: the label is the subcluster
    # Birch's global step is Ward on the subcluster centres; one tree serves every k
    from scipy.cluster.hierarchy import ward as ward_linkage

    centres = b.subcluster_centers_
    children = ward_linkage(centres)[:, :2].astype(np.int64)
    sweep, cuts = [], {}
    for k in [k for k in ks if k <= len(centres)]:
        cuts[k] = cut_tree(children, len(centres), k)
        sweep.append(_sweep_row(k, S, cuts[k][nearest_sub[sweep_idx]], sil_idx, reference, rs))
    k = _choose(sweep)
    return cuts[k][nearest_sub], {"k": k, "threshold": round(thr, 4), "subclusters": int(len(centres))}, sweep


def ward_tree(Z, graph, sizes=None):
    """The full Ward merge tree under a connectivity graph.

    The algorithm of scikit-learn's ``ward_tree(X, connectivity=...)``: merge
    the connected pair of clusters whose merge adds the least within-cluster
    variance, lazily skipping stale heap entries. scikit-learn finds a merged
    cluster's neighbours by following every old neighbour up the parent
    chain, which grows with the tree (120 s at 50k rows, far more at 416k);
    here each live cluster keeps the set of its live neighbours, so a merge
    costs its number of neighbours.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, d)
        The leaves: rows, or the means of groups of rows.
    graph : scipy.sparse matrix, shape (n, n)
        Symmetric, connected (see :func:`knn_graph`); only its structure is used.
    sizes : numpy.ndarray, shape (n,), optional
        Rows per leaf when the leaves are groups (default 1 each).

    Returns
    -------
    children : numpy.ndarray, shape (n - 1, 2)
        Merge ``i`` joins nodes ``children[i]`` into node ``n + i``.
    """
    import heapq

    n = len(Z)
    G = sp.triu(graph, k=1).tocoo()
    size = np.zeros(2 * n - 1)
    size[:n] = 1 if sizes is None else sizes
    total = np.zeros((2 * n - 1, Z.shape[1]))
    total[:n] = Z * size[:n, None]

    def cost(a, cols):
        # Ward's merge cost: |a||c| / (|a|+|c|) * ||mean_a - mean_c||^2
        diff = total[a] / size[a] - total[cols] / size[cols][:, None]
        return size[a] * size[cols] / (size[a] + size[cols]) * np.einsum("ij,ij->i", diff, diff)

    rows, cols = G.row.astype(np.int64), G.col.astype(np.int64)
    init = size[rows] * size[cols] / (size[rows] + size[cols]) * ((Z[rows] - Z[cols]) ** 2).sum(axis=1).astype(np.float64)
    heap = list(zip(init.tolist(), rows.tolist(), cols.tolist()))
    heapq.heapify(heap)
    csr = graph.tocsr()
    nbrs = [set(csr.indices[csr.indptr[i]:csr.indptr[i + 1]].tolist()) - {i} for i in range(n)]
    alive = np.zeros(2 * n - 1, dtype=bool)
    alive[:n] = True
    children = np.empty((n - 1, 2), dtype=np.int64)
    for k in range(n, 2 * n - 1):
        while True:
            _, i, j = heapq.heappop(heap)
            if alive[i] and alive[j]:
                break
        children[k - n] = (i, j)
        alive[i] = alive[j] = False
        alive[k] = True
        size[k] = size[i] + size[j]
        total[k] = total[i] + total[j]
        merged = (nbrs[i] | nbrs[j]) - {i, j}
        nbrs[i] = nbrs[j] = None
        for c in merged:
            s = nbrs[c]
            s.discard(i)
            s.discard(j)
            s.add(k)
        nbrs.append(merged)
        if merged:
            others = np.fromiter(merged, dtype=np.int64, count=len(merged))
            for d, c in zip(cost(k, others).tolist(), others.tolist()):
                heapq.heappush(heap, (d, c, k) if c < k else (d, k, c))
    return children


def cut_tree(children, n_leaves, k):
    """Labels 0..k-1 after the first ``n_leaves - k`` merges of a merge tree."""
    parent = np.arange(2 * n_leaves - 1)
    for i, (a, b) in enumerate(children[: n_leaves - k]):
        parent[a] = parent[b] = n_leaves + i
    # follow each leaf to its root; path halving by repeated indexing
    root = parent[:n_leaves].copy()
    while True:
        nxt = parent[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return np.unique(root, return_inverse=True)[1].astype(np.int32)


def ward_leaves(Z, knn_idx, knn_dist, max_leaves=WARD_LEAVES, random_state=0):
    """The leaves Ward starts from and the kNN connectivity between them.

    Up to :data:`WARD_EXACT_ROWS` rows, every row is a leaf: exact Ward with
    kNN connectivity. Above, the rows are first split into ``max_leaves`` small
    KMeans groups (fitted on a sample, every row assigned) and two groups are
    connected when a row of one has a row of the other among its neighbours.
    Exact Ward on all rows costs the sum of every merge's neighbour count,
    which grows with cluster size: measured 12 s at 20k rows, 120 s at 50k,
    projected beyond half an hour per model at 416k.

    Returns
    -------
    leaf : numpy.ndarray, shape (n,), the leaf of every row
    means, sizes : the leaves' means and row counts
    graph : scipy.sparse matrix, connected
    """
    n = len(Z)
    if n <= WARD_EXACT_ROWS:
        return np.arange(n), Z, np.ones(n), knn_graph(Z, knn_idx, knn_dist)
    from sklearn.cluster import MiniBatchKMeans

    fit = Z[cluster.sample_rows(n, max(20 * max_leaves, 50000), random_state)]
    mbk = MiniBatchKMeans(max_leaves, batch_size=8192, n_init=1, init="random", max_iter=10,
                          random_state=random_state).fit(fit)
    leaf = np.concatenate([mbk.predict(Z[s:s + 65536]) for s in range(0, n, 65536)])
    leaf = np.unique(leaf, return_inverse=True)[1]  # drop empty groups
    m = int(leaf.max()) + 1
    sizes = np.bincount(leaf, minlength=m).astype(np.float64)
    means = np.zeros((m, Z.shape[1]))
    np.add.at(means, leaf, Z)
    means /= sizes[:, None]
    a, b = np.repeat(leaf, knn_idx.shape[1]), leaf[knn_idx.reshape(-1)]
    cross = a != b
    G = sp.csr_matrix((np.ones(int(cross.sum())), (a[cross], b[cross])), shape=(m, m))
    return leaf, means, sizes, connect(G.maximum(G.T).tocsr(), means)


def _ward(Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, rs):
    leaf, means, sizes, graph = ward_leaves(Z, knn_idx, knn_dist, random_state=rs)
    children = ward_tree(means, graph, sizes)
    S = Z[sweep_idx]
    cuts = {}
    sweep = []
    for k in [k for k in ks if k <= len(means)]:
        cuts[k] = cut_tree(children, len(means), k)[leaf]  # one tree, every k: the cut is on all rows
        sweep.append(_sweep_row(k, S, cuts[k][sweep_idx], sil_idx, reference, rs))
    k = _choose(sweep)
    return cuts[k], {"k": k, "leaves": int(len(means)),
                     "connectivity": f"{knn_idx.shape[1]}-NN graph (pynndescent), symmetrised"}, sweep


def mutual_reachability_tree(graph, min_samples):
    """The minimum spanning tree of HDBSCAN's mutual reachability on a sparse distance graph.

    As scikit-learn defines it for a sparse precomputed graph: a row's core
    distance is its ``min_samples``-th smallest stored distance, and an edge
    weighs ``max(core_i, core_j, d_ij)``. HDBSCAN's clusters depend only on
    this tree, so it is built once and every minimum cluster size of the sweep
    is cut from it (:func:`hdbscan_labels`).

    Parameters
    ----------
    graph : scipy.sparse.csr_matrix, shape (n, n)
        Symmetric and connected (:func:`knn_graph`); every row has at least ``min_samples`` entries.
    min_samples : int

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, n)
        The tree, symmetric (n - 1 edges each way).
    """
    G = graph.tocsr().copy()
    G.sort_indices()
    n = G.shape[0]
    lengths = np.diff(G.indptr)
    row_of = np.repeat(np.arange(n), lengths)
    # each row's values in increasing order, then the min_samples-th of each row
    order = np.lexsort((G.data, row_of))
    sorted_data = G.data[order]
    core = np.full(n, np.inf)
    has = lengths >= min_samples
    core[has] = sorted_data[G.indptr[:-1][has] + min_samples - 1]
    G.data = np.maximum(G.data, np.maximum(core[row_of], core[G.indices]))
    tree = sp.csgraph.minimum_spanning_tree(G).tocsr()
    return tree.maximum(tree.T).tocsr()


def hdbscan_labels(tree, min_cluster_size):
    """HDBSCAN's labels (-1 = noise) for one minimum cluster size, from :func:`mutual_reachability_tree`.

    scikit-learn's public ``HDBSCAN`` on the tree as a precomputed sparse
    graph with ``min_samples=1``: a row's core distance is then its shortest
    tree edge, which never raises an edge's weight (every edge is at least as
    long as the shortest edge at either end), so the mutual reachability of
    the tree is the tree itself and its spanning tree is the same tree. The
    result is HDBSCAN with the original ``min_samples`` on the original graph,
    at the cost of a tree instead of the graph.
    """
    from sklearn.cluster import HDBSCAN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's FutureWarning about `copy`
        return HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=1, metric="precomputed",
                       copy=True).fit(tree).labels_.astype(np.int32)


def _hdbscan(Z, knn_idx, knn_dist, ks, reference, sweep_idx, sil_idx, rs):
    graph = knn_graph(Z, knn_idx, knn_dist)
    n = len(Z)
    min_samples = min(HDBSCAN_MIN_SAMPLES, knn_idx.shape[1])
    sizes = [max(5, int(round(share * n))) for share in HDBSCAN_SHARES]
    tree = mutual_reachability_tree(graph, min_samples)
    del graph
    S = Z[sweep_idx]
    sweep, cuts = [], {}
    for share, mcs in zip(HDBSCAN_SHARES, sizes):
        if mcs in cuts:
            continue
        cuts[mcs] = hdbscan_labels(tree, mcs)
        row = _sweep_row(mcs, S, cuts[mcs][sweep_idx], sil_idx)
        row["share"] = share
        row["degenerate"] = degenerate_reason(cuts[mcs])
        sweep.append(row)
    best = _choose_density(sweep)
    return cuts[best["value"]], {"min_cluster_size": best["value"], "min_cluster_share": best["share"],
                                 "min_samples": min_samples,
                                 "graph": f"mutual reachability on the {knn_idx.shape[1]}-NN graph"}, sweep


def _choose_density(sweep):
    """The min_cluster_size with the best mean rank of silhouette (non-noise rows), DB and noise share.

    Degenerate cuts (:func:`degenerate_reason`) are chosen only when every cut is.
    """
    usable = ([r for r in sweep if r["n_clusters"] >= 2 and not r.get("degenerate")]
              or [r for r in sweep if r["n_clusters"] >= 2] or sweep)
    sil = np.nan_to_num(np.array([r["silhouette"] for r in usable]), nan=-1.0)
    db = np.nan_to_num(np.array([r["davies_bouldin"] for r in usable]), nan=np.inf)
    noise = np.array([r["noise_share"] for r in usable])
    mean_rank = np.mean([cluster._rank(-sil), cluster._rank(db), cluster._rank(noise)], axis=0)
    return usable[int(np.lexsort((-sil, mean_rank))[0])]


def centre_distances(Z, labels, chunk_rows=65536):
    """Distance of every row to its cluster's centre and its margin to the next centre.

    Centres are the means of the members' vectors (noise rows, label -1, get
    the distance to the nearest centre and no own cluster). The margin is the
    distance to the second-nearest centre minus the distance to the own one:
    small = on the boundary between two clusters.

    Returns
    -------
    center_distance, margin : numpy.ndarray (n,), float32
    """
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    if k == 0:
        nan = np.full(len(Z), np.nan, dtype=np.float32)
        return nan, nan.copy()
    keep = labels >= 0
    sums = np.zeros((k, Z.shape[1]))
    np.add.at(sums, labels[keep], Z[keep])
    centres = (sums / np.maximum(np.bincount(labels[keep], minlength=k), 1)[:, None]).astype(np.float32)
    own = np.empty(len(Z), dtype=np.float32)
    margin = np.full(len(Z), np.nan, dtype=np.float32)
    cn = (centres ** 2).sum(axis=1)
    for s in range(0, len(Z), chunk_rows):
        block, lab = Z[s:s + chunk_rows], labels[s:s + chunk_rows]
        d = np.sqrt(np.maximum((block ** 2).sum(axis=1)[:, None] - 2 * block @ centres.T + cn, 0))
        r = np.arange(len(block))
        mine = np.where(lab >= 0, d[r, np.maximum(lab, 0)], d.min(axis=1))
        own[s:s + len(block)] = mine
        if k > 1:
            other = d.copy()
            other[r[lab >= 0], lab[lab >= 0]] = np.inf
            margin[s:s + len(block)] = other.min(axis=1) - mine
    return own, margin
