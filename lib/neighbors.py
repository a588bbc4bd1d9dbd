"""Nearest neighbours of every image: pynndescent's graph, and the exact answer to check it."""
from __future__ import annotations

import numpy as np

N_NEIGHBORS = 20
# up to this many distance terms (rows x rows x dims) the exact search is used: 20,000 rows of 64 dims
# take about 3 s with BLAS on 2 cores, where pynndescent's numba compilation alone costs 20-50 s in a
# new process (the first start's largest fixed cost); the answer is exact too
EXACT_TERMS = 20_000 * 20_000 * 64
# pynndescent above that. Its defaults (a graph of k + 1, its own candidate and tree counts) reached
# recall@10 0.898 on osnet at full scale (414,575 rows x 64 dims); a wider graph with more candidates
# and more random-projection trees reaches 0.992 there in 2-2.5x the build time (docs/BENCHMARKS.md,
# `python -m bench --parts neighbours`)
NND_GRAPH = 30        # neighbours per row in the graph NN-descent refines; the first N_NEIGHBORS are kept
NND_CANDIDATES = 60   # candidates per row in each local join
NND_TREES = 64        # random-projection trees of the starting graph
# a combination starts from its parts' neighbour tables instead of trees: a photo's nearest in the
# concatenated space are mostly among its nearest in some part, so NN-descent only has to settle the
# order. At full scale this reached recall@10 0.998 (vdc_type+vdc_color) and 0.994 (all four) in 12 s,
# where the trees took 30-40 s (docs/BENCHMARKS.md, `python -m bench --parts neighbours`)
NND_SEEDED_GRAPH = 25


def build_knn(Z, n_neighbors=N_NEIGHBORS, random_state=0, n_jobs=None, exact_terms=EXACT_TERMS, seeds=None):
    """The ``n_neighbors`` nearest other images of every row (euclidean).

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, d), float32
    n_neighbors : int
        Neighbours kept per row, the row itself excluded.
    random_state : int
    n_jobs : int, optional
    exact_terms : int
        Exact search while ``rows * rows * dims`` is at most this, pynndescent above.
    seeds : numpy.ndarray, shape (n, m), int, optional
        Candidate neighbours of every row (-1 = none), e.g. a combination's parts' neighbour
        tables side by side: NN-descent then starts from them instead of random-projection trees.

    Returns
    -------
    indices : numpy.ndarray, shape (n, n_neighbors), int32, nearest first
    distances : numpy.ndarray, shape (n, n_neighbors), float32
    """
    n = len(Z)
    k = min(n_neighbors, n - 1)
    if n <= 2048 or n * n * Z.shape[1] <= exact_terms:
        # NN-descent needs enough points to mix; small sets are exact, and quicker than compiling it
        return exact_knn(Z, Z, k, exclude_self=True)
    from pynndescent import NNDescent  # imported late: numba compiles on import

    if seeds is not None:
        seeds = np.asarray(seeds, dtype=np.int32)
        if seeds.shape[0] != n:
            raise ValueError(f"seeds has {seeds.shape[0]} rows for {n} vectors")
        start = dict(n_neighbors=max(k + 1, NND_SEEDED_GRAPH), init_graph=seeds)
    else:
        start = dict(n_neighbors=max(k + 1, NND_GRAPH), max_candidates=NND_CANDIDATES, n_trees=NND_TREES)
    index = NNDescent(Z, metric="euclidean", random_state=random_state, n_jobs=n_jobs, low_memory=True,
                      compressed=False, verbose=False, **start)
    idx, dist = index.neighbor_graph
    return _drop_self(idx, dist, k)


def _drop_self(idx, dist, k):
    """Remove each row's own index (or, if absent, its farthest entry)."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    has_self = is_self.any(axis=1)
    drop = np.where(has_self, is_self.argmax(axis=1), idx.shape[1] - 1)
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    out_idx = idx[keep].reshape(n, -1)[:, :k]
    out_dist = dist[keep].reshape(n, -1)[:, :k]
    return out_idx.astype(np.int32), out_dist.astype(np.float32)


def exact_knn(Z, queries, k, exclude_self=False, chunk_rows=None, query_ids=None):
    """Brute-force nearest neighbours of ``queries`` among the rows of ``Z``.

    ``query_ids`` gives each query's own row in ``Z``, which is then never
    listed; ``exclude_self`` is the shorthand for queries that are the first
    rows of ``Z``. Queries go in chunks whose distance block stays near
    64 MB, so memory does not grow with the number of rows.
    """
    Z = np.asarray(Z, dtype=np.float32)
    if exclude_self and query_ids is None:
        query_ids = np.arange(len(queries))
    if chunk_rows is None:
        chunk_rows = int(np.clip(2**24 // max(len(Z), 1), 16, 4096))
    zn = np.einsum("ij,ij->i", Z, Z)
    idx_out = np.empty((len(queries), k), dtype=np.int32)
    dist_out = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), chunk_rows):
        q = np.asarray(queries[start:start + chunk_rows], dtype=np.float32)
        d2 = zn[None, :] - 2 * q @ Z.T + np.einsum("ij,ij->i", q, q)[:, None]
        if query_ids is not None:
            d2[np.arange(len(q)), query_ids[start:start + len(q)]] = np.inf
        part = np.argpartition(d2, k, axis=1)[:, :k]
        pd = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(pd, axis=1)
        idx_out[start:start + len(q)] = np.take_along_axis(part, order, axis=1)
        dist_out[start:start + len(q)] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0))
    return idx_out, dist_out


def recall_at_k(approx, exact, k=10):
    """Mean share of the exact ``k`` nearest found among the approximate ``k`` nearest."""
    a, e = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    hits = [len(np.intersect1d(ai, ei, assume_unique=True)) for ai, ei in zip(a, e)]
    return float(np.mean(hits) / k)
