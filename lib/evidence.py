"""Evidence that a model's clusters and neighbours mean something, and the ranking.

The folders are free ground truth: every folder is one vehicle, photographed
by several cameras from several angles. A descriptor that captures the
vehicle keeps its photos together; one that captures the camera or the light
scatters them. Together with the internal scores (silhouette, Davies–Bouldin)
and stability over resampling, these rank the models (:func:`rank_models`).
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .algorithms import one_thread
from .cluster import sample_rows

RECALL_K = 10
STABILITY_RUNS = 3
# the ranking: each score ranks the models, the recommendation has the best mean rank.
# Silhouette and Davies–Bouldin do not vote: a structureless Gaussian cut into
# many cells scores well on both (measured on the demo: a pure-noise
# descriptor got silhouette 0.33 and Davies–Bouldin 0.81, better than every
# real model); they break ties.
RANK_SCORES = {  # column -> True if higher is better
    "same_vehicle_recall": True,
    "vehicle_consistency": True,
    "stability_ari": True,
}


def same_vehicle_recall(knn_idx, vehicle_codes, k=RECALL_K):
    """Mean share of an image's other photos of the same vehicle found among its ``k`` nearest.

    Per image: same-vehicle neighbours in the top ``k`` divided by
    ``min(k, photos of that vehicle - 1)``; images whose vehicle has one photo
    are left out. The neighbour table never holds the image itself.
    """
    counts = np.bincount(vehicle_codes)
    others = counts[vehicle_codes] - 1
    hits = (vehicle_codes[knn_idx[:, :k]] == vehicle_codes[:, None]).sum(axis=1)
    has = others > 0
    if not has.any():
        return float("nan")
    return float((hits[has] / np.minimum(k, others[has])).mean())


def vehicle_consistency(labels, vehicle_codes):
    """Share of a vehicle's photos in its majority cluster, averaged over vehicles with 2+ photos.

    Noise (label -1) counts as a cluster of its own per photo, never as a majority.
    """
    labels = np.asarray(labels)
    n_vehicles = int(vehicle_codes.max()) + 1
    keep = labels >= 0
    n_labels = int(labels.max()) + 1 if keep.any() else 1
    table = np.zeros((n_vehicles, n_labels), dtype=np.int64)
    np.add.at(table, (vehicle_codes[keep], labels[keep]), 1)
    photos = np.bincount(vehicle_codes, minlength=n_vehicles)
    multi = photos >= 2
    majority = np.maximum(table.max(axis=1), 1)  # a vehicle all noise keeps one photo together
    return float((majority[multi] / photos[multi]).mean())


def stability(Z, k, sample_size=20000, runs=STABILITY_RUNS, random_state=0):
    """Mean pairwise ARI of KMeans fitted on bootstrap samples with different seeds.

    Each run fits on its own bootstrap sample and labels one common
    evaluation sample; 1 = the same partition every time.
    """
    rng = np.random.default_rng(random_state + 11)
    n = len(Z)
    evaluate = Z[sample_rows(n, sample_size, random_state + 12)]
    size = min(n, sample_size)
    preds = []
    with one_thread():
        for r in range(runs):
            boot = Z[rng.integers(0, n, size)]
            km = KMeans(n_clusters=k, n_init=1, random_state=random_state + 100 + r).fit(boot)
            preds.append(km.predict(evaluate))
    pairs = [adjusted_rand_score(preds[a], preds[b]) for a in range(runs) for b in range(a + 1, runs)]
    return float(np.mean(pairs))


def neighbour_overlap(idx_a, idx_b, k=RECALL_K):
    """Mean share of the ``k`` nearest neighbours two models agree on, over all images."""
    a, b = idx_a[:, :k], idx_b[:, :k]
    same = np.zeros(len(a), dtype=np.int64)
    for j in range(k):
        same += (b == a[:, j:j + 1]).any(axis=1)
    return float(same.mean() / k)


def agreement(labels, knn):
    """Every pair of models: ARI and NMI of their clusterings, overlap of their 10-NN sets.

    Parameters
    ----------
    labels : dict model -> labels (n,)
    knn : dict model -> neighbour indices (n, k)

    Returns
    -------
    list of dict, one per ordered pair (both directions, and each model with itself)
    """
    names = list(labels)
    rows = []
    for i, a in enumerate(names):
        for b in names[i:]:
            r = dict(ari=float(adjusted_rand_score(labels[a], labels[b])),
                     nmi=float(normalized_mutual_info_score(labels[a], labels[b])),
                     knn_overlap=neighbour_overlap(knn[a], knn[b]))
            rows.append(dict(model_a=a, model_b=b, **r))
            if a != b:
                rows.append(dict(model_a=b, model_b=a, **r))
    return rows


def rank_models(table):
    """Rank models: 1 = recommended.

    Every score in :data:`RANK_SCORES` ranks the models (ties share the
    average rank, a missing score ranks last); a model's place is its mean
    rank, ties broken by the higher silhouette.

    Parameters
    ----------
    table : pandas.DataFrame with a ``model`` column and the scores

    Returns
    -------
    ranks : dict model -> int
    reasons : dict model -> str, which scores it leads or trails on
    """
    import pandas as pd

    per_score = {}
    for col, higher in RANK_SCORES.items():
        values = pd.to_numeric(table[col], errors="coerce")
        per_score[col] = (-values if higher else values).rank(method="average", na_option="bottom")
    ranks = pd.DataFrame(per_score)
    mean = ranks.mean(axis=1)
    order = sorted(range(len(table)), key=lambda i: (mean.iloc[i], -np.nan_to_num(
        float(table["silhouette"].iloc[i]), nan=-1.0)))
    place = {table["model"].iloc[i]: p + 1 for p, i in enumerate(order)}
    reasons = {}
    for i in range(len(table)):
        differ = [c for c in RANK_SCORES if ranks[c].nunique() > 1]  # a tie everywhere says nothing
        best = [c for c in differ if ranks[c].iloc[i] == ranks[c].min()]
        worst = [c for c in differ if ranks[c].iloc[i] == ranks[c].max()]
        parts = [f"mean rank {mean.iloc[i]:.2f} over {len(RANK_SCORES)} scores"]
        if best:
            parts.append("best on " + ", ".join(best))
        if worst:
            parts.append("worst on " + ", ".join(worst))
        reasons[table["model"].iloc[i]] = "; ".join(parts)
    return place, reasons
