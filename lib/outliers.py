"""Outlier scores per image, higher = more unusual.

Several detectors see different things (IsolationForest finds rare kinds of
vehicle, LOF finds bad captures among common ones), so each is kept and the
model's score is the mean of each image's two highest percentile ranks. All but IsolationForest
reuse the neighbour table and the clustering, so they cost O(n k).
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from .cluster import sample_rows

SCORES = ("knn", "lof", "centroid", "iforest", "vehicle")
FLAG_SHARE = 0.01  # an image is flagged by a score when it is in that score's top 1%


def knn_distance(knn_distances, k=10):
    """Mean distance to the ``k`` nearest other images."""
    return knn_distances[:, :k].mean(axis=1).astype(np.float32)


def local_outlier_factor(knn_indices, knn_distances, k=10):
    """LOF from a precomputed neighbour table (Breunig et al. 2000).

    Ratio of the neighbours' local reachability density to the image's own;
    about 1 inside a cluster, well above 1 for an isolated image.
    """
    idx = knn_indices[:, :k]
    dist = knn_distances[:, :k].astype(np.float64)
    k_distance = dist[:, -1]
    reach = np.maximum(dist, k_distance[idx])
    lrd = 1.0 / (reach.mean(axis=1) + 1e-12)
    return (lrd[idx].mean(axis=1) / lrd).astype(np.float32)


def centroid_distance(Z, labels, centers):
    """Distance to the own cluster centre, divided by that cluster's median distance."""
    d = np.linalg.norm(Z - centers[labels], axis=1)
    med = np.ones(len(centers))
    for c in range(len(centers)):
        sel = d[labels == c]
        if len(sel):
            med[c] = max(np.median(sel), 1e-12)
    return (d / med[labels]).astype(np.float32)


def isolation_forest(Z, random_state=0, max_fit_rows=50000):
    """IsolationForest anomaly score (fitted on a sample, scored on all rows)."""
    fit_idx = sample_rows(len(Z), max_fit_rows, random_state)
    forest = IsolationForest(n_estimators=100, random_state=random_state, n_jobs=1)
    forest.fit(Z[fit_idx])
    out = np.empty(len(Z), dtype=np.float32)
    for start in range(0, len(Z), 65536):
        out[start:start + 65536] = -forest.score_samples(Z[start:start + 65536])
    return out


def vehicle_distance(Z, vehicle_codes):
    """Distance to the mean of the other photos of the same vehicle.

    A photo far from its own vehicle's other photos is a bad capture or a
    mislabelled folder. Vehicles with one photo get the median score.
    """
    n_veh = int(vehicle_codes.max()) + 1
    sums = np.zeros((n_veh, Z.shape[1]), dtype=np.float64)
    np.add.at(sums, vehicle_codes, Z)
    counts = np.bincount(vehicle_codes, minlength=n_veh)
    others = counts[vehicle_codes] - 1
    d = np.full(len(Z), np.nan, dtype=np.float64)
    ok = others > 0
    loo_mean = (sums[vehicle_codes[ok]] - Z[ok]) / others[ok, None]
    d[ok] = np.linalg.norm(Z[ok] - loo_mean, axis=1)
    if ok.any():
        d[~ok] = np.median(d[ok])
    else:
        d[:] = 0
    return d.astype(np.float32)


def percentile_rank(x):
    """Rank of each value as a share in (0, 1], ties sharing the highest rank."""
    x = np.asarray(x)
    order = np.sort(x)
    return (np.searchsorted(order, x, side="right") / len(x)).astype(np.float32)


def all_scores(Z, knn_indices, knn_distances, labels, centers, vehicle_codes, random_state=0):
    """Every detector's raw score, as ``{name: array}``."""
    return {
        "knn": knn_distance(knn_distances),
        "lof": local_outlier_factor(knn_indices, knn_distances),
        "centroid": centroid_distance(Z, labels, centers),
        "iforest": isolation_forest(Z, random_state),
        "vehicle": vehicle_distance(Z, vehicle_codes),
    }


def combine(scores, top=2):
    """Mean of each image's ``top`` highest percentile ranks over the given scores.

    Detectors see different things, so a plain mean would dilute one that is
    sure; requiring two to agree keeps one noisy detector from putting an
    ordinary image on top.
    """
    ranks = np.stack([percentile_rank(v) for v in scores.values()], axis=1)
    top = min(top, ranks.shape[1])
    return np.sort(ranks, axis=1)[:, -top:].mean(axis=1).astype(np.float32)


def flagged_by(scores, share=FLAG_SHARE):
    """For each image, the names of the scores that put it in their top ``share``."""
    names = list(scores)
    hits = np.stack([percentile_rank(scores[s]) > 1 - share for s in names], axis=1)
    return [",".join(n for n, h in zip(names, row) if h) for row in hits]
