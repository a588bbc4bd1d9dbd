"""Evidence that a model's clusters and neighbours mean something, and two recommendations.

The folders are free ground truth: every folder is one vehicle, photographed
by several cameras from several angles. A descriptor that captures the
vehicle keeps its photos together; one that captures the camera or the light
scatters them.

Two questions get two answers (:func:`rank_neighbours`, :func:`rank_groups`):
"which model finds the same car" is answered by same-vehicle recall of the
neighbours alone; "which model gives groups a person can name" by the
clusters: vehicle consistency corrected for chance, stability over
resampled fits, separation (silhouette) and, when the pictures were there,
agreement with the measured colour. A model without cluster structure
(:func:`lib.cluster.verdict` = ``none``) is never recommended for groups.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .cluster import one_thread, sample_rows

RECALL_K = 10
STABILITY_RUNS = 5     # resampled fits; the mean ARI over their 10 pairs
STABILITY_N_INIT = 3   # KMeans starts per fit (one start made the figure mostly noise)
CHANCE_PERMUTATIONS = 10
# "most interpretable groups": each score ranks the models with cluster structure, the mean rank decides.
GROUP_SCORES = {  # column -> label in the reasons
    "consistency_kappa": "chance-corrected consistency",
    "stability_ari": "stability",
    "silhouette": "separation (silhouette)",
    "color_nmi": "agreement with colour",
}
RECALL_DECIMALS = 3  # recalls equal to this many decimals (as shown) are a tie


def same_vehicle_recall(knn_idx, vehicle_codes, k=RECALL_K):
    """Mean share of an image's other photos of the same vehicle found among its ``k`` nearest.

    Per image: same-vehicle neighbours in the top ``k`` divided by
    ``min(k, photos of that vehicle - 1)``; images whose vehicle has one photo
    are left out. The neighbour table never holds the image itself; an
    entry of -1 is no neighbour (a table with near-duplicate frames taken
    out, :func:`lib.outliers.group_neighbours`).
    """
    counts = np.bincount(vehicle_codes)
    others = counts[vehicle_codes] - 1
    idx = knn_idx[:, :k]
    hits = ((vehicle_codes[np.maximum(idx, 0)] == vehicle_codes[:, None]) & (idx >= 0)).sum(axis=1)
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


def chance_corrected_consistency(labels, vehicle_codes, permutations=CHANCE_PERMUTATIONS, random_state=0):
    """Vehicle consistency corrected for chance, kappa-style.

    ``kappa = (observed - expected) / (1 - expected)``: ``observed`` is
    :func:`vehicle_consistency`; ``expected`` is the consistency a random
    labelling with the same cluster sizes gets, estimated by shuffling the
    labels over the images ``permutations`` times (the mean over every
    vehicle of every shuffle; its spread is small since thousands of vehicles
    are averaged). Few large clusters give a high raw consistency for free
    (one cluster of 95% of the images: about 0.95); kappa is about 0 then,
    and 1 when every vehicle's photos share a cluster that is not the
    result of chance.

    Parameters
    ----------
    labels : numpy.ndarray of int, -1 = noise
    vehicle_codes : numpy.ndarray of int, 0..V-1
    permutations : int
    random_state : int

    Returns
    -------
    dict
        ``observed``, ``expected``, ``kappa`` (NaN when ``expected`` is 1).
    """
    labels = np.asarray(labels)
    observed = vehicle_consistency(labels, vehicle_codes)
    rng = np.random.default_rng([int(random_state), 17])
    expected = float(np.mean([vehicle_consistency(rng.permutation(labels), vehicle_codes)
                              for _ in range(permutations)]))
    kappa = (observed - expected) / (1 - expected) if expected < 1 - 1e-12 else float("nan")
    return dict(observed=float(observed), expected=expected, kappa=float(kappa))


def colour_agreement(labels, colour_names):
    """NMI between the clusters and the measured colour names of the images that have one.

    Returns NaN when fewer than two colours (or no image) were measured, e.g.
    a load without pictures.
    """
    names = np.asarray(colour_names, dtype=object)
    have = np.array([c is not None and c == c for c in names], dtype=bool)  # c == c: not NaN
    if have.sum() < 2 or len(set(names[have].tolist())) < 2:
        return float("nan")
    return float(normalized_mutual_info_score(np.asarray(labels)[have], names[have].astype(str)))


def stability(Z, k, sample_size=20000, runs=STABILITY_RUNS, random_state=0, n_init=STABILITY_N_INIT):
    """Mean pairwise ARI of KMeans fitted on resamples with different seeds.

    Each run fits KMeans (``n_init`` starts) on its own bootstrap sample of
    ``min(n, sample_size)`` rows and labels one common evaluation sample;
    the figure is the mean ARI over every pair of runs (10 pairs for 5
    runs). 1 = the same partition every time.
    """
    rng = np.random.default_rng(random_state + 11)
    n = len(Z)
    evaluate = np.asarray(Z[sample_rows(n, sample_size, random_state + 12)], dtype=np.float64)
    size = min(n, sample_size)
    preds = []
    with one_thread():
        for r in range(runs):
            boot = np.asarray(Z[rng.integers(0, n, size)], dtype=np.float64)
            km = KMeans(n_clusters=k, n_init=n_init, random_state=random_state + 100 + r).fit(boot)
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


def _names(models):
    return ", ".join(models)


def rank_neighbours(table):
    """"Best for finding the same vehicle": 1 = the highest same-vehicle recall@10.

    Recalls equal to :data:`RECALL_DECIMALS` decimals (as the pages show
    them) are a tie and share the rank; a missing recall ranks last.

    Parameters
    ----------
    table : pandas.DataFrame with ``model`` and ``same_vehicle_recall``

    Returns
    -------
    ranks : dict model -> int
    reasons : dict model -> str, one line
    """
    import pandas as pd

    models = list(table["model"])
    recall = pd.to_numeric(table["same_vehicle_recall"], errors="coerce").round(RECALL_DECIMALS)
    recall.index = models
    ranks = (-recall).rank(method="min", na_option="bottom").astype(int)
    best = recall.max()
    leaders = [m for m in models if recall[m] == best]
    reasons = {}
    for m in models:
        r = recall[m]
        tied = [o for o in models if o != m and recall[o] == r and np.isfinite(r)]
        tie = f", tied with {_names(tied)}" if tied else ""
        if not np.isfinite(r):
            reasons[m] = "no same-vehicle recall (no vehicle has two photos)"
        elif ranks[m] == 1:
            rest = recall.drop(leaders).dropna()
            nxt = (f"; next: {rest.idxmax()} {rest.max():.{RECALL_DECIMALS}f}" if len(rest) else "")
            reasons[m] = f"best same-vehicle recall@10, {r:.{RECALL_DECIMALS}f}{tie}{nxt}"
        else:
            reasons[m] = (f"same-vehicle recall@10 {r:.{RECALL_DECIMALS}f}{tie}, "
                          f"{best - r:.{RECALL_DECIMALS}f} below {_names(leaders)}")
    return {m: int(ranks[m]) for m in models}, reasons


def rank_groups(table):
    """"Most interpretable groups": 1 = recommended; never a model without cluster structure.

    Every score of :data:`GROUP_SCORES` that every ranked model has (colour
    agreement is left out of a load without pictures) ranks the models
    within its tier of ``structure`` (higher is better; ties share the
    average rank); a model's place is its mean rank, and equal mean ranks
    are a tie (same place). The tiers come in order: ``clear`` structure,
    then ``weak`` (no clear k, e.g. the gap still rising at the end of the
    range: its clusters are where the search stopped, however well they
    score), then ``none``. If no model has structure, no model gets a place
    (None): nothing is recommended.

    Parameters
    ----------
    table : pandas.DataFrame with ``model``, ``structure``, ``chosen_k``,
        ``gap_at_k``, ``gap_se_at_k`` and the scores of :data:`GROUP_SCORES`

    Returns
    -------
    ranks : dict model -> int or None
    reasons : dict model -> str, one line
    """
    import pandas as pd

    t = table.set_index("model")
    models = list(t.index)
    structure = t["structure"].fillna("none")
    scores = [c for c in GROUP_SCORES if c in t and pd.to_numeric(t[c], errors="coerce").notna().all()]
    left_out = [GROUP_SCORES[c] for c in GROUP_SCORES if c not in scores]
    ranks, reasons, mean = {}, {}, {}
    place = 1
    # the scores compare the models with structure (and those without among themselves); the place
    # puts clear structure before weak before none, the mean rank deciding within each
    order = {"clear": 0, "weak": 1}
    for group in ([m for m in models if structure[m] in order], [m for m in models if structure[m] not in order]):
        if not group:
            continue
        per = pd.DataFrame({c: (-pd.to_numeric(t.loc[group, c], errors="coerce")).rank(method="average")
                            for c in scores}, index=group)
        m_rank = per.mean(axis=1).round(6) if scores else pd.Series(1.0, index=group)
        key = {m: (order.get(structure[m], 2), m_rank[m]) for m in group}
        differ = [c for c in scores if per[c].nunique() > 1]
        for m in group:
            mean[m] = float(m_rank[m])
            ranks[m] = place + int(sum(key[o] < key[m] for o in group))
            tied = [o for o in group if o != m and key[o] == key[m]]
            best = [GROUP_SCORES[c] for c in differ if per.loc[m, c] == per[c].min()]
            worst = [GROUP_SCORES[c] for c in differ if per.loc[m, c] == per[c].max()]
            k = t.loc[m, "chosen_k"]
            gap, se = t.loc[m, "gap_at_k"], t.loc[m, "gap_se_at_k"]
            label = {"clear": "clear structure", "weak": "weak structure"}.get(structure[m], "no structure")
            parts = [f"{label} (k = {k}, gap {gap:.3f} ± {se:.3f})"]
            if structure[m] == "none":
                parts.append("no k beats structureless data: never recommended for groups")
            among = ("" if len(group) == len(models) else
                     f" among the {len(group)} without structure" if structure[m] == "none" else
                     f" among the {len(group)} with structure")
            parts.append(f"mean rank {mean[m]:.2f} over {len(scores)} scores{among}")
            if structure[m] == "weak" and any(structure[o] == "clear" for o in group):
                parts.append("placed after every model with clear structure")
            if tied:
                parts.append(f"tied with {_names(tied)}")
            if best:
                parts.append("best on " + ", ".join(best))
            if worst:
                parts.append("worst on " + ", ".join(worst))
            if left_out:
                parts.append("not measured: " + ", ".join(left_out))
            reasons[m] = "; ".join(parts)
        place += len(group)
    if all(structure[m] == "none" for m in models):
        ranks = dict.fromkeys(models)
        reasons = {m: "no model has cluster structure, so none is recommended for groups; " + reasons[m]
                   for m in models}
    return ranks, reasons
