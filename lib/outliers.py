"""Outlier scores per image, calibrated so that one sure model can speak.

Five detectors per model: distance to the nearest other images (``knn``),
local outlier factor (``lof``), distance to the cluster centre (``centroid``),
IsolationForest (``iforest``) and distance from the same vehicle's other
photos (``vehicle``). Near-duplicate groups (:mod:`lib.duplicates`) count as
one image: an image's own group is taken out of its neighbours and a group
appears once among another image's, so a burst of frames neither hides
itself nor makes its neighbours look isolated.

Fusing (found on real data: averaging percentile ranks dilutes a signal one
model sees alone and flattens everything above the 99th percentile):

1. **Calibrate** every raw score as a robust z-score on a log scale
   (median and MAD of ``log(score)``), and read it as a tail probability
   (the normal upper tail of that z).
2. **Count alike detectors once**: ``knn``, ``lof`` and ``centroid`` all
   measure isolation in the model's space; they form one family, whose z is
   their largest. ``iforest`` (rarity) and ``vehicle`` (unlike its own
   vehicle) are families of their own. A model's z is its largest family z,
   its tail probability Šidák-corrected for the number of families.
3. **Weigh each model by its trust** (:func:`trust`): how far its
   neighbours beat chance at finding the same vehicle. A model that carries
   no identity signal (no structure) weighs 0; one 10 times better than
   chance or more weighs 1. The consensus is the largest weighted model z,
   Šidák-corrected for the total weight: one trustworthy model's extreme
   score reaches the top even when the others see nothing. Two models that
   both find an image moderately unusual (Stouffer's z of the two strongest)
   also reach it; the better of the two rules counts, corrected for that.

The stored score is ``-log10`` of that probability; a person reads it as
"1 in N" (N = 1 / probability). Rows whose descriptor had NaN or inf are
flagged with that cause and ranked first: their geometry is made up.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtri_exp

from .cluster import sample_rows

SCORES = ("knn", "lof", "centroid", "iforest", "vehicle")
FAMILIES = {"isolation": ("knn", "lof", "centroid"), "rarity": ("iforest",), "identity": ("vehicle",)}
CAUSES = {  # a few words a person reads under the image
    "knn": "far from every neighbour",
    "lof": "sparser than its neighbours",
    "centroid": "far from its cluster's centre",
    "iforest": "a rare kind",
    "vehicle": "unlike its vehicle's other photos",
}
NONFINITE = "descriptor has NaN/inf"
FLAG_SHARE = 0.01  # an image is flagged by a score when it is in that score's top 1%
NOTABLE_Z = 2.0    # a detector or model counts in the cause from this calibrated z on (1 in 44)
TAIL_SHARE = 0.05  # the exponential tail is fitted on the top 5 % of each score
FULL_TRUST_LIFT = 10.0
NO_TRUST_LIFT = 2.0
BROKEN_SCORE = 300.0  # -log10 p of a row with NaN/inf: above any computed score
K = 10


# neighbour tables with near-duplicate groups counted once

def group_neighbours(knn_idx, knn_dist, rep, k=K):
    """The ``k`` nearest other images, the own group left out and each other group once.

    Parameters
    ----------
    knn_idx, knn_dist : numpy.ndarray, shape (n, m)
        The stored neighbour table, nearest first.
    rep : numpy.ndarray, shape (n,)
        Each image's near-duplicate group representative (itself if none).

    Returns
    -------
    idx : numpy.ndarray (n, k), int64, -1 where fewer than ``k`` remain
    dist : numpy.ndarray (n, k), float64, NaN there
    """
    n, m = knn_idx.shape
    R = rep[knn_idx]
    keep = R != rep[:, None]
    for j in range(1, m):  # a group already listed to the left is dropped
        keep[:, j] &= ~(R[:, :j] == R[:, j:j + 1]).any(axis=1)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(knn_idx, order, axis=1).astype(np.int64)
    dist = np.take_along_axis(knn_dist, order, axis=1).astype(np.float64)
    valid = np.take_along_axis(keep, order, axis=1)
    idx[~valid] = -1
    dist[~valid] = np.nan
    return idx, dist


def knn_distance(dist):
    """Mean distance to the nearest other images (NaN entries ignored)."""
    return _nanmean(dist).astype(np.float32)


def local_outlier_factor(idx, dist):
    """LOF from a neighbour table (Breunig et al. 2000); -1/NaN entries ignored.

    Ratio of the neighbours' local reachability density to the image's own;
    about 1 inside a cluster, well above 1 for an isolated image. Reach
    distances have a floor (1 % of the median distance), so a residual exact
    copy cannot make a density infinite.
    """
    floor = 0.01 * np.nanmedian(dist) if np.isfinite(dist).any() else 1e-12
    last = np.where(np.isfinite(dist), np.arange(dist.shape[1]), -1).max(axis=1)
    k_distance = np.where(last >= 0, dist[np.arange(len(dist)), np.maximum(last, 0)], np.nan)
    safe = np.maximum(idx, 0)
    reach = np.fmax(np.maximum(dist, k_distance[safe]), floor)
    reach[idx < 0] = np.nan
    lrd = 1.0 / _nanmean(reach)
    lrd_n = np.where(idx >= 0, lrd[safe], np.nan)
    return (_nanmean(lrd_n) / lrd).astype(np.float32)


def _nanmean(a):
    count = np.isfinite(a).sum(axis=1)
    total = np.where(np.isfinite(a), a, 0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def centroid_distance(Z, labels, centers):
    """Distance to the own cluster centre, divided by that cluster's median distance."""
    d = np.linalg.norm(Z - centers[labels], axis=1)
    med = np.ones(len(centers))
    for c in range(len(centers)):
        sel = d[labels == c]
        if len(sel):
            med[c] = max(np.median(sel), 1e-12)
    return (d / med[labels]).astype(np.float32)


def isolation_forest(Z, rep=None, random_state=0, max_fit_rows=50000):
    """IsolationForest anomaly score, fitted on a sample of group representatives, scored on all rows."""
    return isolation_scores(fit_isolation_forest(Z, rep, random_state, max_fit_rows), Z)


def fit_isolation_forest(Z, rep=None, random_state=0, max_fit_rows=50000):
    """The IsolationForest of :func:`isolation_forest`, fitted on a sample of group representatives."""
    from sklearn.ensemble import IsolationForest  # in here: the app imports this module for its names

    units = np.flatnonzero(rep == np.arange(len(Z))) if rep is not None else np.arange(len(Z))
    fit_idx = units[sample_rows(len(units), max_fit_rows, random_state)]
    return IsolationForest(n_estimators=100, random_state=random_state, n_jobs=1).fit(Z[fit_idx])


def isolation_scores(forest, Z):
    """A fitted forest's anomaly score of every row of ``Z`` (higher = more isolated), in chunks."""
    out = np.empty(len(Z), dtype=np.float32)
    for start in range(0, len(Z), 65536):
        out[start:start + 65536] = -forest.score_samples(Z[start:start + 65536])
    return out


def vehicle_distance(Z, vehicle_codes, rep=None):
    """Distance to the mean of the other photos of the same vehicle.

    A photo far from its own vehicle's other photos is a bad capture or a
    mislabelled folder. A near-duplicate group weighs as one photo (its
    frames share the weight), and the image's own group is left out of the
    mean, so a burst does not vouch for itself. Images with no other photo of
    their vehicle get the median score.
    """
    n = len(Z)
    rep = np.arange(n) if rep is None else rep
    w = 1.0 / np.bincount(rep, minlength=n)[rep]  # a group's frames share one weight
    n_veh = int(vehicle_codes.max()) + 1
    sums = np.zeros((n_veh, Z.shape[1]), dtype=np.float64)
    np.add.at(sums, vehicle_codes, Z * w[:, None])
    weight = np.bincount(vehicle_codes, weights=w, minlength=n_veh)
    # the own group's share: its members' weighted sum is the group mean
    gsum = np.zeros((n, Z.shape[1]), dtype=np.float64)
    np.add.at(gsum, rep, Z * w[:, None])
    own_sum, own_w = gsum[rep], np.bincount(rep, weights=w, minlength=n)[rep]
    others = weight[vehicle_codes] - own_w
    d = np.full(n, np.nan, dtype=np.float64)
    ok = others > 1e-9
    loo_mean = (sums[vehicle_codes[ok]] - own_sum[ok]) / others[ok, None]
    d[ok] = np.linalg.norm(Z[ok] - loo_mean, axis=1)
    d[~ok] = np.median(d[ok]) if ok.any() else 0.0
    return d.astype(np.float32)


def percentile_rank(x):
    """Rank of each value as a share in (0, 1], ties sharing the highest rank."""
    x = np.asarray(x)
    order = np.sort(x)
    return (np.searchsorted(order, x, side="right") / len(x)).astype(np.float32)


def all_scores(Z, knn_idx, knn_dist, labels, centers, vehicle_codes, rep=None, random_state=0, iforest=None):
    """Every detector's raw score, as ``{name: array}``; ``rep`` = near-duplicate groups (none if None);
    ``iforest``: the IsolationForest's scores when already computed (on Dask workers)."""
    rep = np.arange(len(Z)) if rep is None else rep
    idx, dist = group_neighbours(knn_idx, knn_dist, rep)
    return {
        "knn": knn_distance(dist),
        "lof": local_outlier_factor(idx, dist),
        "centroid": centroid_distance(Z, labels, centers),
        "iforest": isolation_forest(Z, rep, random_state) if iforest is None else iforest,
        "vehicle": vehicle_distance(Z, vehicle_codes, rep),
    }


# calibration and fusion

def log10_tail_probability(x, units=None, tail_share=TAIL_SHARE):
    """Calibrated tail probability of every score, as ``log10``: how rare a value this high is.

    Empirical below the top ``tail_share`` of the fit rows (``units``: one row per
    near-duplicate group); above it, a fitted exponential tail on ``log(score)``
    (a Pareto tail on the score, the peaks-over-threshold model of extreme-value
    theory), so that the probability keeps falling past the largest value seen
    instead of flattening at 1/n as a percentile does. Each detector's own tail
    weight sets its scale: a heavy-tailed score (LOF among small tight groups)
    needs a far larger value than a light-tailed one to be called rare.
    """
    x = np.asarray(x, dtype=np.float64)
    fit = x[units] if units is not None else x
    positive = fit[np.isfinite(fit) & (fit > 0)]
    if len(positive) < 20:
        return np.zeros(len(x))
    low = positive.min()
    lx = np.log(np.maximum(np.nan_to_num(x, nan=low), low))
    lf = np.sort(np.log(positive))
    u = np.quantile(lf, 1 - tail_share)
    excess = lf[lf > u] - u
    scale = excess.mean() if len(excess) and excess.mean() > 0 else 1.0
    # share of fit rows at or above each value (at least one: the value itself)
    above = len(lf) - np.searchsorted(lf, lx, side="left")
    empirical = np.log10(np.maximum(above, 1) / len(lf))
    tail = np.log10(tail_share) - (lx - u) / scale / np.log(10)
    # past the largest value seen, the empirical share stops at 1/n: go on falling from there
    beyond = np.log10(1 / len(lf)) - (lx - lf[-1]) / scale / np.log(10)
    return np.where(lx > lf[-1], np.minimum(tail, beyond), np.where(lx > u, np.minimum(tail, empirical), empirical))


def log10_tail(z, tests=1.0):
    """``log10`` of the Šidák-corrected upper-tail probability of the largest of ``tests`` normal z-scores."""
    log_p = log_ndtr(-np.asarray(z, dtype=np.float64))  # log of the normal upper tail
    # 1 - (1 - p)^m, stably: -expm1(m * log1p(-p)); for tiny p it is m p (the former underflows)
    small = log_p < -30
    with np.errstate(divide="ignore"):
        sidak = np.log(-np.expm1(tests * np.log1p(-np.exp(np.where(small, -30.0, log_p)))))
    log_sidak = np.where(small, log_p + np.log(tests), sidak)
    # a computed score stays below a broken row's
    return np.clip(log_sidak / np.log(10), 1 - BROKEN_SCORE, 0.0)


def z_of_log10_tail(log10_p):
    """The z whose single upper tail is ``10 ** log10_p`` (inverse of :func:`log10_tail` with one test)."""
    return -ndtri_exp(np.asarray(log10_p, dtype=np.float64) * np.log(10))


def detector_z(raw, units=None):
    """Every detector's calibrated score as a normal z (of its tail probability), ``{name: array}``."""
    return {name: z_of_log10_tail(log10_tail_probability(v, units)) for name, v in raw.items()}


def model_score(zs, nonfinite=None):
    """A model's calibrated score from its detectors' z-scores.

    Returns
    -------
    z : numpy.ndarray
        The normal z of the model's (corrected) tail probability.
    log10_p : numpy.ndarray
        ``log10`` of that probability; ``-BROKEN_SCORE`` for non-finite rows.
    """
    fam = np.stack([np.max([zs[d] for d in dets if d in zs], axis=0)
                    for dets in FAMILIES.values() if any(d in zs for d in dets)], axis=1)
    log10_p = log10_tail(fam.max(axis=1), tests=fam.shape[1])
    if nonfinite is not None:
        log10_p = np.where(nonfinite, -BROKEN_SCORE, log10_p)
    return z_of_log10_tail(log10_p), log10_p


def trust(recall, chance, full_lift=FULL_TRUST_LIFT):
    """A model's weight in the consensus from how far its neighbours beat chance.

    Log-linear in the lift (recall over chance), clipped to [0, 1]: a model
    whose neighbours find the same vehicle no more than :data:`NO_TRUST_LIFT`
    times as often as chance weighs 0; ``full_lift`` times or more weighs 1.
    """
    if not np.isfinite(recall) or not np.isfinite(chance) or recall <= 0 or chance <= 0:
        return 0.0
    return float(np.clip(np.log(recall / chance / NO_TRUST_LIFT) / np.log(full_lift / NO_TRUST_LIFT), 0.0, 1.0))


def chance_recall(vehicle_codes, k=K):
    """Same-vehicle recall@k of neighbours drawn at random (the floor of :func:`lib.evidence.same_vehicle_recall`)."""
    counts = np.bincount(vehicle_codes)
    others = counts[vehicle_codes] - 1
    n = len(vehicle_codes)
    has = others > 0
    if not has.any() or n < 2:
        return float("nan")
    expected_hits = k * others[has] / (n - 1)
    return float((expected_hits / np.minimum(k, others[has])).mean())


def effective_weights(weights):
    """The models' weights, or equal weights when no model beats chance at all.

    Without any identity signal (folders that are not vehicles, a dataset of
    one photo per vehicle) nothing tells a trustworthy model from another.
    """
    if not any(w > 0 for w in weights.values()):
        return dict.fromkeys(weights, 1.0)
    return dict(weights)


def consensus(model_z, weights, nonfinite=None):
    """The consensus ``log10`` tail probability from every model's z and weight.

    Parameters
    ----------
    model_z : dict model -> z (n,), from :func:`model_score`
    weights : dict model -> float in [0, 1], from :func:`trust`
    nonfinite : numpy.ndarray of bool, optional
        Rows non-finite in any model: ranked first.
    """
    names = list(model_z)
    weights = effective_weights(weights)
    w = np.array([weights.get(m, 0.0) for m in names])
    S = -np.sort(-(np.stack([model_z[m] for m in names], axis=1) * w), axis=1)  # strongest first
    # one model sure: the largest weighted z, corrected for the total weight
    log10_p = log10_tail(S[:, 0], tests=max(float(w.sum()), 1.0))
    voters = int((w > 0).sum())
    if voters >= 2:
        # or two models moderately sure (Stouffer's z of the two strongest, corrected for the pairs
        # there are to choose from); the better of the two rules, corrected for taking the better
        pair = log10_tail((S[:, 0] + S[:, 1]) / np.sqrt(2)) + np.log10(voters * (voters - 1) / 2)
        log10_p = np.minimum(np.minimum(log10_p, pair) + np.log10(2), 0.0)
    if nonfinite is not None:
        log10_p = np.where(nonfinite, -BROKEN_SCORE, log10_p)
    return log10_p


def flagged_by(scores, share=FLAG_SHARE):
    """For each image, the names of the scores that put it in their top ``share``."""
    names = list(scores)
    hits = np.stack([percentile_rank(scores[s]) > 1 - share for s in names], axis=1)
    return [",".join(n for n, h in zip(names, row) if h) for row in hits]


def causes(zs, nonfinite=None, notable=NOTABLE_Z):
    """A few words per image: the detectors with a notable calibrated z, strongest first."""
    names = list(zs)
    Z = np.stack([zs[d] for d in names], axis=1)
    order = np.argsort(-Z, axis=1)
    out = []
    for i in range(len(Z)):
        if nonfinite is not None and nonfinite[i]:
            out.append(NONFINITE)
            continue
        words = [CAUSES[names[j]] for j in order[i] if Z[i, j] >= notable]
        out.append("; ".join(words[:2]))
    return out


def consensus_causes(model_log10_p, model_causes, weights, nonfinite_by_model=None, notable=NOTABLE_Z):
    """Per image: "vdc_type: a rare kind; unusual in 1 of 3 models" (trusted models only are counted)."""
    weights = effective_weights(weights)
    trusted = [m for m in model_log10_p if weights.get(m, 0) > 0]
    limit = float(log10_tail(notable))
    out = []
    n = len(next(iter(model_log10_p.values())))
    for i in range(n):
        broken = [m for m in model_log10_p if nonfinite_by_model is not None and nonfinite_by_model[m][i]]
        if broken:
            out.append(f"{NONFINITE} in {', '.join(broken)}")
            continue
        unusual = sorted((m for m in trusted if model_log10_p[m][i] <= limit), key=lambda m: model_log10_p[m][i])
        if not unusual:
            out.append("")
            continue
        lead = unusual[0]
        out.append(f"{lead}: {model_causes[lead][i] or 'unusual'}; unusual in {len(unusual)} of {len(trusted)} models")
    return out


def one_in(log10_p):
    """"1 in N" for a probability given as ``log10``: N, capped for display."""
    return np.round(10.0 ** np.minimum(-np.asarray(log10_p, dtype=np.float64), 12))
