"""Near-duplicate groups: several frames of one pass, resized copies.

Road cameras store several frames of one passing car. Such near-copies make
LOF explode (a k-distance of 0), fill a similar-car answer with the query's
own frames and get counted many times in a review, so they are found first
and treated as one image afterwards.

A pair of images is a near-duplicate in a model when its distance is below
that model's threshold, :data:`RATIO` times the median distance from an image
to its nearest other image. On real and realistic data the nearest other
image is mostly another photo of the same vehicle (or of the same kind), so
the threshold sits far below the distance between two different photos of
one vehicle; frames of one pass are far below it. Candidate pairs come from
every model's neighbour table (no n x n matrix); a pair is kept when more than
half of the models that can judge it (both rows finite) agree. Groups are
formed greedily around representatives (FiftyOne's rule): an image joins a
group only when it is a near-duplicate of the group's representative, so
groups never chain through a dense region.
"""
from __future__ import annotations

import numpy as np

RATIO = 0.25


def threshold(knn_dist, ratio=RATIO):
    """A model's near-duplicate distance: ``ratio`` times the median 1-NN distance."""
    d1 = np.asarray(knn_dist)[:, 0]
    d1 = d1[np.isfinite(d1)]
    return float(ratio * np.median(d1)) if len(d1) else 0.0


def candidate_pairs(knn_idx, knn_dist, limit):
    """Pairs ``(i, j)``, ``i < j``, within ``limit`` in one model's neighbour table, as an (m, 2) array."""
    rows, cols = np.nonzero(np.asarray(knn_dist) <= limit)
    i, j = rows.astype(np.int64), np.asarray(knn_idx)[rows, cols].astype(np.int64)
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def pair_distances(Z, pairs, chunk=1 << 18):
    """Distance of every pair's two rows in ``Z``."""
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + len(p)] = np.linalg.norm(Z[p[:, 0]] - Z[p[:, 1]], axis=1)
    return out


def vote(pairs, models):
    """Which candidate pairs a majority of the models call near-duplicates.

    Parameters
    ----------
    pairs : numpy.ndarray, shape (m, 2)
    models : list of tuple ``(Z, limit, broken)``
        Each model's reduced vectors, its :func:`threshold` and a boolean mask
        of its rows that were not finite (they cannot judge).

    Returns
    -------
    keep : numpy.ndarray of bool, shape (m,)
    score : numpy.ndarray of float, shape (m,)
        Mean of distance / threshold over the judging models (lower = closer).
    """
    yes = np.zeros(len(pairs), dtype=np.int32)
    judges = np.zeros(len(pairs), dtype=np.int32)
    ratio = np.zeros(len(pairs), dtype=np.float64)
    for Z, limit, broken in models:
        can = ~(broken[pairs[:, 0]] | broken[pairs[:, 1]])
        d = pair_distances(Z, pairs)
        judges += can
        yes += can & (d <= limit)
        ratio += np.where(can, d / max(limit, 1e-12), 0.0)
    keep = (judges > 0) & (2 * yes > judges)
    return keep, ratio / np.maximum(judges, 1)


def group(n, pairs, score):
    """Greedy groups around representatives from accepted near-duplicate pairs.

    Pairs are visited closest first. An image not yet in a group either
    starts one (as representative) with its partner, or joins the partner's
    group when it is a near-duplicate of that group's representative.

    Returns
    -------
    numpy.ndarray, shape (n,), int64
        Each image's representative (itself when it is in no group).
    """
    rep = np.arange(n, dtype=np.int64)
    member = np.zeros(n, dtype=bool)
    accepted = set(map(tuple, pairs.tolist()))
    for a, b in pairs[np.argsort(score, kind="stable")].tolist():
        if not member[a] and not member[b]:
            rep[b] = a
            member[a] = member[b] = True
        else:
            if member[a] and member[b]:
                continue
            inside, new = (a, b) if member[a] else (b, a)
            r = rep[inside]
            if (min(r, new), max(r, new)) in accepted:
                rep[new] = r
                member[new] = True
    return rep


def groups_table(rep):
    """Rows of the ``duplicate_groups`` table: one per image in a group of two or more.

    ``group_id`` is the representative's image ID; ``size`` the group's size.
    """
    ids = np.arange(len(rep))
    sizes = np.bincount(rep, minlength=len(rep))
    inside = sizes[rep] >= 2
    return {"group_id": rep[inside].astype(np.int32), "image_id": ids[inside].astype(np.int32),
            "is_representative": (rep[inside] == ids[inside]), "size": sizes[rep[inside]].astype(np.int32)}


def find(knn, vectors, broken):
    """Near-duplicate groups of a dataset from every model's neighbours and vectors.

    Parameters
    ----------
    knn : dict model -> (indices, distances)
    vectors : dict model -> numpy.ndarray (n, d)
    broken : dict model -> bool array (n,), rows that were not finite

    Returns
    -------
    rep : numpy.ndarray (n,), each image's representative
    thresholds : dict model -> float
    """
    models = list(knn)
    n = len(next(iter(vectors.values())))
    limits = {m: threshold(knn[m][1]) for m in models}
    cand = [candidate_pairs(*knn[m], limits[m]) for m in models]
    pairs = np.unique(np.concatenate(cand), axis=0) if any(len(c) for c in cand) else np.zeros((0, 2), np.int64)
    keep, score = vote(pairs, [(vectors[m], limits[m], broken[m]) for m in models])
    return group(n, pairs[keep], score[keep]), limits
