"""A neighbour table built in parts: rows partitioned by coarse centre, searched in the nearest parts.

This is how the distributed load builds its neighbour table so that no
worker holds every vector (an IVF index, as in FAISS, with an exact search
inside each part). Coarse centres are fitted on a sample; every row belongs to
the part of its nearest centre and is searched for in the parts of its
``n_probe`` nearest centres; the candidates of those parts are merged per
row. Every function here works on one block or one part, so each can run as a
task of its own. Recall against exact search is measured in the tests and in
the load's report.
"""
from __future__ import annotations

import numpy as np

from .cluster import sample_rows
from .neighbors import exact_knn

PART_ROWS = 5_000     # rows per part: the exact search inside a part stays a few BLAS calls
TARGET_RECALL = 0.98  # parts are probed until this share of a sample's exact 10 nearest lie in them
SAMPLE_ROWS = 50_000  # the coarse centres are fitted on this many rows
CHECK_ROWS = 1_000    # queries of that sample


def n_parts(n_rows, part_rows=PART_ROWS):
    """How many parts ``n_rows`` rows are cut into (at least 1)."""
    return max(1, int(round(n_rows / part_rows)))


def fit_centres(S, parts, random_state=0):
    """Coarse centres: KMeans with ``parts`` centres on the sample rows ``S``."""
    from sklearn.cluster import KMeans

    parts = min(parts, len(S))
    idx = sample_rows(len(S), SAMPLE_ROWS, random_state)
    return KMeans(n_clusters=parts, n_init=1, random_state=random_state).fit(S[idx]).cluster_centers_.astype(
        np.float32)


def choose_n_probe(Z, centres, target=TARGET_RECALL, k=10, random_state=0):
    """The fewest parts to probe per row for a recall@k of ``target``, and the recall they give.

    Exact on a sample of queries and without any search: a true neighbour is
    found exactly when its part is among the query's probed parts, so the
    recall of every number of probes follows from the parts' ranks. Data with
    little structure needs many probes; the search then costs more, not recall.
    """
    rows = sample_rows(len(Z), CHECK_ROWS, random_state)
    k = min(k, len(Z) - 1)
    truth, _ = exact_knn(Z, Z[rows], k, query_ids=rows)
    part = probes(Z, centres, 1)[:, 0]
    order = probes(Z[rows], centres, len(centres))                 # every query's parts, nearest first
    rank = np.empty_like(order)
    rank[np.arange(len(rows))[:, None], order] = np.arange(len(centres))
    found_at = np.take_along_axis(rank, part[truth], axis=1)       # the probe that reaches each true neighbour
    recall = np.array([(found_at < p).mean() for p in range(1, len(centres) + 1)])
    n_probe = int(np.searchsorted(recall, target) + 1) if recall[-1] >= target else len(centres)
    n_probe = min(n_probe, len(centres))
    return n_probe, float(recall[n_probe - 1])


def probes(Zb, centres, n_probe):
    """The ``n_probe`` nearest coarse centres of every row, nearest (its own part) first."""
    Zb = np.asarray(Zb, dtype=np.float32)
    d2 = np.einsum("ij,ij->i", centres, centres)[None, :] - 2 * Zb @ centres.T
    return np.argsort(d2, axis=1, kind="stable")[:, :n_probe]  # parts are few: a full sort is cheap


def members(Zb, start, probes_b, part):
    """The rows of one block that belong to ``part``: ``(global ids int64, vectors)``."""
    sel = np.flatnonzero(probes_b[:, 0] == part)
    return start + sel.astype(np.int64), np.asarray(Zb[sel], dtype=np.float32)


def gather_part(pieces):
    """One part's members from every block's piece."""
    ids = np.concatenate([p[0] for p in pieces])
    vecs = np.concatenate([p[1] for p in pieces]) if len(ids) else np.zeros((0, pieces[0][1].shape[1]), np.float32)
    return ids, vecs


def search_part(part_members, Zb, start, probes_b, part, k):
    """The ``k`` nearest members of ``part`` for the rows of a block that probe it.

    Returns
    -------
    rows : int64, positions in the block of the rows searched
    slot : int, which probe the part is for each row
    idx : int64 (len(rows), k), global ids, -1 where the part had fewer members
    dist : float32 (len(rows), k), inf where idx is -1
    """
    ids, vecs = part_members
    rows, slot = np.nonzero(probes_b == part)
    q = np.asarray(Zb[rows], dtype=np.float32)
    idx = np.full((len(rows), k), -1, dtype=np.int64)
    dist = np.full((len(rows), k), np.inf, dtype=np.float32)
    if len(rows) and len(ids):
        # the query itself is a member of its own part: searched with one more, dropped below
        kk = min(k + 1, len(ids))
        local, d = exact_knn(vecs, q, kk)
        found = ids[local]
        self_hit = found == (start + rows)[:, None]
        d = np.where(self_hit, np.inf, d)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        found, d = np.take_along_axis(found, order, axis=1), np.take_along_axis(d, order, axis=1)
        found = np.where(np.isinf(d), -1, found)
        idx[:, :found.shape[1]], dist[:, :d.shape[1]] = found, d
    return rows, slot, idx, dist


def merge(n_rows, n_probe, k, results):
    """Each row's ``k`` nearest over the parts it probed (``results`` of :func:`search_part`).

    Returns ``(idx int32, dist float32)`` of shape (n_rows, k), nearest first."""
    idx = np.full((n_rows, n_probe * k), -1, dtype=np.int64)
    dist = np.full((n_rows, n_probe * k), np.inf, dtype=np.float32)
    for rows, slot, i, d in results:
        cols = slot[:, None] * k + np.arange(k)
        idx[rows[:, None], cols] = i
        dist[rows[:, None], cols] = d
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(idx, order, axis=1).astype(np.int32),
            np.take_along_axis(dist, order, axis=1).astype(np.float32))
