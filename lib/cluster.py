"""Choosing k and clustering the reduced descriptors.

The k sweep fits KMeans on a random sample (every k, same sample) and scores
each fit with Calinski–Harabasz, Davies–Bouldin and inertia on that sample and
silhouette on a smaller sub-sample (silhouette is O(n^2)). The final
clustering runs on all rows, from the best of many restarts on a sample.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

DEFAULT_KS = tuple(range(2, 31))
SWEEP_SAMPLE = 20000
SILHOUETTE_SAMPLE = 5000
RESTARTS = 30  # of the final KMeans, on RESTART_SAMPLE rows
RESTART_SAMPLE = 50000


def sample_rows(n, size, random_state=0):
    """Sorted indices of a uniform sample without replacement (all rows if n <= size)."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))


def k_sweep(Z, ks=DEFAULT_KS, sample_size=SWEEP_SAMPLE, silhouette_size=SILHOUETTE_SAMPLE,
            random_state=0, progress=None):
    """Score KMeans for every k in ``ks``.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, d)
    ks : iterable of int
    sample_size : int
        Rows the fits and the CH/DB/inertia scores use.
    silhouette_size : int
        Rows of that sample the silhouette uses.
    random_state : int
    progress : callable, optional
        Called with 1 after each k.

    Returns
    -------
    list of dict
        One per k: ``k, calinski_harabasz, davies_bouldin, silhouette, inertia``.
    """
    from .algorithms import one_thread

    with one_thread():
        return _k_sweep(Z, ks, sample_size, silhouette_size, random_state, progress)


def _k_sweep(Z, ks, sample_size, silhouette_size, random_state, progress):
    idx = sample_rows(len(Z), sample_size, random_state)
    S = Z[idx]
    sil_idx = sample_rows(len(S), silhouette_size, random_state + 1)
    null = reference_sample(S, random_state)
    rows = []
    for k in ks:
        if k >= len(S):
            break
        km = KMeans(n_clusters=k, n_init=2, random_state=random_state).fit(S)
        labels = km.labels_
        if len(np.unique(labels)) < 2:
            continue
        sil_labels = labels[sil_idx]
        sil = (silhouette_score(S[sil_idx], sil_labels)
               if len(np.unique(sil_labels)) > 1 else float("nan"))
        ch = float(calinski_harabasz_score(S, labels))
        null_labels = KMeans(n_clusters=k, n_init=1, random_state=random_state).fit_predict(null)
        rows.append(dict(
            k=int(k),
            calinski_harabasz=ch,
            calinski_harabasz_gain=ch / float(calinski_harabasz_score(null, null_labels)),
            davies_bouldin=float(davies_bouldin_score(S, labels)),
            silhouette=float(sil),
            inertia=float(km.inertia_) * len(Z) / len(S),  # scaled to all rows
        ))
        if progress:
            progress(1)
    return rows


def reference_sample(S, random_state=0):
    """Structureless data of the same shape: a Gaussian with each column's variance.

    The columns are principal components, so they are uncorrelated and a
    diagonal Gaussian is the right "no clusters" reference.
    """
    rng = np.random.default_rng(random_state + 2)
    return (rng.standard_normal(S.shape) * S.std(axis=0) + S.mean(axis=0)).astype(np.float32)


def choose_k(scores):
    """Pick k by a vote of the three internal scores.

    Each score ranks every k of the sweep and the chosen k has the best mean
    rank, ties going to the higher silhouette. Silhouette (high) and
    Davies–Bouldin (low) vote as they are. Calinski–Harabasz falls with k
    even on data without clusters, which is how it picks k = 2 on real
    descriptors; it votes as its gain over a structureless reference of the
    same shape at the same k (``calinski_harabasz_gain``, as in the gap
    statistic), when the sweep has it.

    Parameters
    ----------
    scores : list of dict, as returned by :func:`k_sweep`

    Returns
    -------
    int
    """
    if not scores:
        raise ValueError("empty k sweep")
    ks = np.array([s["k"] for s in scores])
    ch = np.array([s.get("calinski_harabasz_gain", s["calinski_harabasz"]) for s in scores])
    db = np.array([s["davies_bouldin"] for s in scores])
    sil = np.nan_to_num(np.array([s["silhouette"] for s in scores]), nan=-1.0)
    ranks = [_rank(-ch), _rank(db), _rank(-sil)]
    mean_rank = np.mean(ranks, axis=0)
    best = np.lexsort((-sil, mean_rank))[0]
    return int(ks[best])


def _rank(values):
    """Rank 1 = smallest value; ties share the average rank."""
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        same = values == v
        ranks[same] = ranks[same].mean()
    return ranks


def fit_kmeans(Z, k, random_state=0, n_init=RESTARTS, restart_sample=RESTART_SAMPLE):
    """KMeans on all rows, started from the best of ``n_init`` runs on a sample.

    Many restarts are what make the clustering reproducible: with a few, two
    loads of overlapping data (or a load and a re-load with one batch fewer)
    can land in different local optima and disagree on a quarter of the
    images. Running the restarts on a sample keeps their cost fixed as rows
    grow; one Lloyd run on all rows then refines the best of them.

    Returns
    -------
    tuple
        ``(labels int32, centers float32, inertia)``
    """
    idx = sample_rows(len(Z), restart_sample, random_state)
    best = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(Z[idx])
    km = KMeans(n_clusters=k, init=best.cluster_centers_, n_init=1, random_state=random_state).fit(Z)
    return km.labels_.astype(np.int32), km.cluster_centers_.astype(np.float32), float(km.inertia_)


def final_scores(Z, labels, sample_size=SWEEP_SAMPLE, silhouette_size=SILHOUETTE_SAMPLE,
                 random_state=0):
    """Internal scores of the final clustering, on the same kind of samples as the sweep."""
    idx = sample_rows(len(Z), sample_size, random_state)
    sil_idx = sample_rows(len(idx), silhouette_size, random_state + 1)
    return label_scores(Z[idx], labels[idx], sil_idx)


def label_scores(S, labels, sil_idx):
    """Calinski–Harabasz, Davies–Bouldin on ``S`` and silhouette on ``S[sil_idx]``.

    Noise rows (label -1) are left out; a score that needs two clusters is
    NaN when fewer remain.
    """
    keep = labels >= 0
    S_, L_ = S[keep], labels[keep]
    sil_keep = sil_idx[keep[sil_idx]]
    nan = float("nan")
    two = len(np.unique(L_)) > 1
    sil_two = two and len(np.unique(labels[sil_keep])) > 1 and len(sil_keep) > len(np.unique(labels[sil_keep]))
    return dict(
        calinski_harabasz=float(calinski_harabasz_score(S_, L_)) if two else nan,
        davies_bouldin=float(davies_bouldin_score(S_, L_)) if two else nan,
        silhouette=float(silhouette_score(S[sil_keep], labels[sil_keep])) if sil_two else nan,
    )
