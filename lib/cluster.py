"""Choosing k and clustering the reduced descriptors.

The k sweep fits KMeans (best of :data:`SWEEP_N_INIT` starts) on a random
sample for every k and scores each fit with Calinski–Harabasz,
Davies–Bouldin and inertia on that sample and silhouette on a smaller
sub-sample (silhouette is O(n^2)). Those scores are shown; they do not
choose k. k is chosen by the gap statistic (Tibshirani, Walther and Hastie
2001, "Estimating the number of clusters in a data set via the gap
statistic") with its one-standard-error rule, which can answer k = 1: no
cluster structure. See :func:`choose`.

The final clustering runs on all rows, from the best of many restarts on a
sample (:func:`fit_kmeans`).

Imports run one way: :mod:`lib.algorithms` and :mod:`lib.evidence` import
this module, never the reverse.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

# scikit-learn is imported in the functions that fit: the app imports this module for its names
# (lib.algorithms, lib.outliers) and stays ~90 MB lighter without it (test_pages.py checks it does)

DEFAULT_KS = tuple(range(2, 31))
SWEEP_SAMPLE = 20000
SILHOUETTE_SAMPLE = 5000
SWEEP_N_INIT = 3   # KMeans starts per k in the sweep
SWEEP_THREADS = 2  # k fitted at once, each single-threaded (see _Sweep.rows)
RESTARTS = 30  # of the final KMeans, on RESTART_SAMPLE rows
RESTART_SAMPLE = 50000

# the gap statistic
GAP_REFERENCES = 10   # B: reference draws
GAP_ROWS = 2000       # rows of every reference draw, and of the data's gap term
GAP_N_INIT = 1        # KMeans starts per reference draw: on structureless data the best of 3 starts lowers
                      # log(W/n) by at most 0.0007 (measured: uniform, 64 dims, 5,000 rows), a tenth of the
                      # gap's standard error with 10 draws of 2,000 rows; the draws' mean averages it out
GAP_BOX_PERCENTILES = (0.5, 99.5)  # the reference box per component (min/max would let one outlier stretch it)
GAP_DENSE_UP_TO = 10  # the gap is computed for every k up to here, then for every 5th k and both ends
# the verdict (see :func:`verdict`)
GAP_CLEAR = 0.10      # gap over one cluster for `clear`: the clusters cut log-dispersion 0.1 more than on
                      # structureless data (10% of the dispersion)
GAP_SE_MIN = 2.0      # structure at all: the gap over one cluster exceeds this many standard errors
WIDEN = 2             # when the best k is the range's end, the range is widened once up to WIDEN x its end


def one_thread():
    """Fits on a sample run single-threaded: on a shared machine, OpenMP threads of
    small fits spin against other processes (measured 3.7 s vs 0.07 s for a
    2,500-row MiniBatchKMeans under load)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def sample_rows(n, size, random_state=0):
    """Sorted indices of a uniform sample without replacement (all rows if n <= size)."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))


def gap_ks(ks):
    """The k values of a sweep the gap is computed for.

    Every k up to :data:`GAP_DENSE_UP_TO`, then every multiple of 5, and both
    ends of the range: each k costs :data:`GAP_REFERENCES` reference fits,
    and telling k = 23 from k = 25 is beyond what the data can say anyway.
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        return []
    return [k for k in ks if k <= GAP_DENSE_UP_TO or k % 5 == 0 or k in (ks[0], ks[-1])]


def log_dispersion(X, labels=None):
    """``log(W / n)``: W is the sum of squared distances of the rows to their cluster's mean.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    labels : numpy.ndarray of int, shape (n,), optional
        None = one cluster. Noise rows (-1) are left out, and n counts the rest.

    Returns
    -------
    float
        Per row, so that samples of different sizes compare.
    """
    X = np.asarray(X, dtype=np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        X, labels = X[labels >= 0], labels[labels >= 0]
    if len(X) == 0:
        return float("nan")
    X = X - X.mean(axis=0)
    total = float(np.einsum("ij,ij->", X, X))
    if labels is None:
        return float(np.log(max(total, 1e-300) / len(X)))
    L = np.unique(labels, return_inverse=True)[1]
    sums = np.zeros((int(L.max()) + 1, X.shape[1]))
    np.add.at(sums, L, X)
    between = float(((sums ** 2).sum(axis=1) / np.bincount(L)).sum())
    return float(np.log(max(total - between, 1e-300) / len(X)))


def reference_draws(S, n_draws=GAP_REFERENCES, rows=GAP_ROWS, random_state=0):
    """Structureless data spanning the sample: uniform in its box.

    The columns of the reduced descriptors are principal components, so a
    box over each column's range is Tibshirani's reference (b), the box
    aligned with the principal components (R's ``cluster::clusGap`` default).
    Each column's box runs from its :data:`GAP_BOX_PERCENTILES` percentiles
    rather than min to max, so that a few far rows (real descriptors have
    them) do not stretch it. Uniform rather than Gaussian: a box is the
    least favourable single-blob shape, so no unimodal cloud looks clustered
    against it (Tibshirani et al. 2001, section 3).

    Parameters
    ----------
    S : numpy.ndarray, shape (n, d)
    n_draws : int
    rows : int
        Rows per draw (at most ``n``).
    random_state : int

    Returns
    -------
    list of numpy.ndarray, float64, shape (min(rows, n), d)
    """
    lo, hi = np.percentile(np.asarray(S, dtype=np.float64), GAP_BOX_PERCENTILES, axis=0)
    rng = np.random.default_rng([int(random_state), 2])
    m = min(int(rows), len(S))
    return [lo + rng.random((m, S.shape[1])) * (hi - lo) for _ in range(n_draws)]


class GapReference:
    """``log(W_k / m)`` of KMeans on every reference draw, for the k asked so far.

    Shared by every algorithm of a model, so that each one's k is judged
    against the same structureless data.

    Parameters
    ----------
    S : numpy.ndarray, shape (n, d)
        The sweep sample the reference mimics.
    n_draws, rows, random_state : see :func:`reference_draws`
    n_init : int
        KMeans starts on every draw.
    """

    def __init__(self, S, n_draws=GAP_REFERENCES, rows=GAP_ROWS, random_state=0, n_init=GAP_N_INIT):
        self.draws = reference_draws(S, n_draws, rows, random_state)
        self.rows = len(self.draws[0])
        self.n_init = n_init
        self.random_state = random_state
        self.log_w = {1: np.array([log_dispersion(R) for R in self.draws])}

    def add(self, ks):
        """Fit the draws for every k of ``ks`` not done yet (k must be below the draw's rows)."""
        from sklearn.cluster import KMeans

        for k in ks:
            k = int(k)
            if k in self.log_w or k >= self.rows:
                continue
            self.log_w[k] = np.array([
                np.log(KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state + b)
                       .fit(R).inertia_ / len(R)) for b, R in enumerate(self.draws)])
        return self

    def __contains__(self, k):
        return int(k) in self.log_w

    def expected(self, k):
        """Mean ``log(W_k / m)`` over the draws."""
        return float(self.log_w[int(k)].mean())

    def se(self, k):
        """Tibshirani's ``s_k``: the draws' standard deviation times ``sqrt(1 + 1/B)``."""
        v = self.log_w[int(k)]
        return float(v.std() * np.sqrt(1 + 1 / len(v)))

    def gap(self, k, log_w_k, log_w_1):
        """The gap at k minus the gap at k = 1, from the data's ``log(W / n)`` at k and at 1.

        Tibshirani's gap is ``E*[log W_k] - log W_k``; the one-standard-error
        rule is unchanged when every gap is shifted by the same constant, and
        after the shift 0 means "no better than one cluster".
        """
        return (self.expected(k) - log_w_k) - (self.expected(1) - log_w_1)

    def gap_of(self, S, labels, k, random_state=0):
        """``(gap, se)`` of any partition of the rows ``S`` into ``k`` clusters.

        The data's term is the partition's dispersion on a sample of
        :attr:`rows` rows of ``S`` (the size of a draw), each cluster's centre
        the mean of its rows there. For KMeans, :func:`choose` refits the
        centres on those rows instead; for other algorithms the partition is
        taken as it is, which makes their gap slightly conservative.
        """
        if k not in self:
            return float("nan"), float("nan")
        g = sample_rows(len(S), self.rows, random_state + 4)
        G, L = S[g], np.asarray(labels)[g]
        return self.gap(k, log_dispersion(G, L), log_dispersion(G)), self.se(k)


def one_se_rule(ks, gaps, ses):
    """The one-standard-error rule at the largest gap: the smallest k with ``gap(k) >= gap(k*) - s(k*)``.

    ``k*`` is the k of the largest gap (Dudoit & Fridlyand's "global" form of
    Tibshirani's rule, R's ``cluster::maxSE(method="globalSEmax")``).
    Tibshirani's first-local-maximum form stops at k = 1 whenever two
    clusters barely beat one, as with four blobs in two close pairs, even
    when four clusters beat one by far.

    Parameters
    ----------
    ks : sequence of int, increasing (1 first, to allow "no structure")
    gaps, ses : sequences of float, one per k

    Returns
    -------
    int
        The chosen k; the last k if the gap rises all the way.
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    best = int(np.argmax(gaps))
    limit = gaps[best] - ses[best]
    return int(ks[int(np.argmax(gaps >= limit))])


def verdict(k, gap, se, at_end=False):
    """Cluster structure: ``"clear"``, ``"weak"`` or ``"none"``.

    Parameters
    ----------
    k : int
        The one-standard-error rule's k (1 = no k beats one cluster).
    gap : float
        The gap at that k over the gap at k = 1.
    se : float
        Its standard error, ``sqrt(s_k^2 + s_1^2)``.
    at_end : bool
        The rule's k is the end of the range even after widening it.

    Returns
    -------
    str
        ``none`` when k = 1 or the gap is within :data:`GAP_SE_MIN` standard
        errors of 0 (no k beats structureless data); ``weak`` when there is
        structure but the gap is below :data:`GAP_CLEAR` or the k found is
        only the range's end; ``clear`` otherwise.
    """
    if k <= 1 or not np.isfinite(gap) or gap <= GAP_SE_MIN * se:
        return "none"
    if gap < GAP_CLEAR or at_end:
        return "weak"
    return "clear"


@dataclass
class KChoice:
    """The choice of k for one model.

    Attributes
    ----------
    k : int
        The k to cluster with (>= 2 even without structure, so that the pages have clusters).
    rule_k : int
        The one-standard-error rule's answer (1 = no structure).
    structure : str
        ``clear``, ``weak`` or ``none`` (:func:`verdict`).
    gap, gap_se : float
        Gap at ``k`` over the gap at k = 1, and its standard error.
    note : str or None
        What happened at an end of the range (or why k is shown without structure).
    scores : list of dict
        The sweep, one row per k tried (widened ones included), increasing k.
    reference : GapReference
    widened_to : int or None
    """

    k: int
    rule_k: int
    structure: str
    gap: float
    gap_se: float
    note: str | None
    scores: list = field(default_factory=list)
    reference: GapReference | None = None
    widened_to: int | None = None


class _Sweep:
    """The sweep sample, its silhouette and gap sub-samples, and the reference."""

    def __init__(self, Z, sample_size, silhouette_size, random_state, n_refs, gap_rows):
        from sklearn.metrics import pairwise_distances

        self.n = len(Z)
        # float64: scikit-learn's distances on float32 go through a slow up-casting path (half the sweep's time)
        self.S = np.asarray(Z[sample_rows(len(Z), sample_size, random_state)], dtype=np.float64)
        self.sil_idx = sample_rows(len(self.S), silhouette_size, random_state + 1)
        # the silhouette sample's distances once for every k (computing them per k was half the sweep's
        # time); float32 halves the 200 MB of 5,000 x 5,000
        self.sil_D = pairwise_distances(self.S[self.sil_idx]).astype(np.float32)
        self.rs = random_state
        self.reference = GapReference(self.S, n_refs, gap_rows, random_state)
        self.g_idx = sample_rows(len(self.S), self.reference.rows, random_state + 4)
        self.log_w_1 = log_dispersion(self.S[self.g_idx])
        self.s_1 = self.reference.se(1)

    @property
    def max_k(self):
        """The largest k a sweep can try: below the rows of the sample and of a draw."""
        return min(len(self.S), self.reference.rows) - 1

    def rows(self, ks, with_gap, progress=None):
        """The rows of ``ks`` (ascending), fitted :data:`SWEEP_THREADS` k at a time.

        Each k's fits are seeded on their own, so the rows do not depend on which
        thread made them; scikit-learn's KMeans and the scores run mostly outside
        the GIL, so the threads use the cores the single-threaded fits leave idle.
        """
        ks = [int(k) for k in ks if k < len(self.S)]

        def row(k):
            with one_thread():  # OpenMP's thread count is per calling thread: each worker sets its own
                return self._row(k, k in with_gap)

        out = []
        with ThreadPoolExecutor(SWEEP_THREADS) as pool:
            for out_row in pool.map(row, ks):  # in k order
                if out_row is not None:
                    out.append(out_row)
                if progress:
                    progress(1)
        return out

    def _row(self, k, with_gap):
        from sklearn.cluster import KMeans
        from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

        S = self.S
        km = KMeans(n_clusters=k, n_init=SWEEP_N_INIT, random_state=self.rs).fit(S)
        labels = km.labels_
        if len(np.unique(labels)) < 2:
            return None
        sil_labels = labels[self.sil_idx]
        sil = (silhouette_score(self.sil_D, sil_labels, metric="precomputed")
               if 1 < len(np.unique(sil_labels)) < len(self.sil_idx) else float("nan"))
        gap = se = float("nan")
        if with_gap and k < self.reference.rows:
            self.reference.add([k])
            G = S[self.g_idx]
            # the data's dispersion on as many rows as a draw has, KMeans refitted there from the sample's centres
            refit = KMeans(n_clusters=k, init=km.cluster_centers_, n_init=1, random_state=self.rs).fit(G)
            gap = self.reference.gap(k, float(np.log(refit.inertia_ / len(G))), self.log_w_1)
            se = self.reference.se(k)
        return dict(k=k, calinski_harabasz=float(calinski_harabasz_score(S, labels)),
                    davies_bouldin=float(davies_bouldin_score(S, labels)), silhouette=float(sil),
                    inertia=float(km.inertia_) * self.n / len(S),  # scaled to all rows
                    gap=float(gap), gap_se=float(se))


def k_sweep(Z, ks=DEFAULT_KS, sample_size=SWEEP_SAMPLE, silhouette_size=SILHOUETTE_SAMPLE,
            random_state=0, progress=None, n_refs=GAP_REFERENCES, gap_rows=GAP_ROWS):
    """Score KMeans for every k in ``ks`` (the sweep of :func:`choose`, without the choice).

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
    n_refs, gap_rows : int
        Reference draws of the gap statistic and their rows.

    Returns
    -------
    list of dict
        One per k: ``k, calinski_harabasz, davies_bouldin, silhouette, inertia,
        gap, gap_se`` (gap NaN for the k :func:`gap_ks` skips).
    """
    with one_thread():
        sw = _Sweep(Z, sample_size, silhouette_size, random_state, n_refs, gap_rows)
        return sw.rows(sorted({int(k) for k in ks}), set(gap_ks(ks)), progress)


def _rule(rows):
    """The one-SE rule over the rows with a gap, k = 1 (gap 0) first."""
    usable = [r for r in rows if np.isfinite(r["gap"])]
    ks = [1] + [r["k"] for r in usable]
    return one_se_rule(ks, [0.0] + [r["gap"] for r in usable], [0.0] + [r["gap_se"] for r in usable])


def choose(Z, ks=DEFAULT_KS, sample_size=SWEEP_SAMPLE, silhouette_size=SILHOUETTE_SAMPLE,
           random_state=0, progress=None, n_refs=GAP_REFERENCES, gap_rows=GAP_ROWS):
    """Sweep k, choose it by the gap statistic, and say how sure that is.

    Steps:

    1. KMeans (:data:`SWEEP_N_INIT` starts) for every k of ``ks`` on a
       sample of ``sample_size`` rows, scored (CH, DB, silhouette, inertia).
    2. The gap (:class:`GapReference`): ``n_refs`` uniform draws of
       ``gap_rows`` rows in the sample's principal-component box, KMeans on
       each; the data's term on ``gap_rows`` rows of the sample. Computed for
       the k of :func:`gap_ks`, and for k = 1.
    3. The one-standard-error rule at the largest gap (:func:`one_se_rule`) over k = 1
       and those k. If it lands on the range's end, the range is widened once
       on the same sample, up to :data:`WIDEN` times its end in about six
       steps, and the rule runs again.
    4. The verdict (:func:`verdict`) and a note when the answer sits at an
       end of the range.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, d)
    ks : iterable of int
        The range (k >= 2).
    sample_size, silhouette_size : int
    random_state : int
    progress : callable, optional
        Called with 1 after each k (widened ones too).
    n_refs, gap_rows : int

    Returns
    -------
    KChoice
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("empty k range")
    with one_thread():
        sw = _Sweep(Z, sample_size, silhouette_size, random_state, n_refs, gap_rows)
        rows = sw.rows(ks, set(gap_ks(ks)), progress)
        if not rows:
            raise ValueError(f"no k of {ks[0]}..{ks[-1]} gives two clusters on {len(sw.S)} rows")
        lo, hi = rows[0]["k"], rows[-1]["k"]
        k_hat = _rule(rows)
        note, widened, at_end = None, None, False
        if lo == hi:  # a range of one k is the user's choice, not an end to widen past
            note = f"k = {lo} was given (a range of one k); the verdict says whether it beats one cluster"
        elif k_hat == hi:
            step = max(1, hi // 6)
            extra = [k for k in range(hi + step, WIDEN * hi + 1, step) if k <= sw.max_k]
            if extra:
                rows += sw.rows(extra, set(extra), progress)
                widened = rows[-1]["k"]
                k_hat = _rule(rows)
            if k_hat == rows[-1]["k"]:
                at_end = True
                note = (f"the gap still rises at k = {k_hat}, the end of the range"
                        + (f" ({lo}..{hi}, widened once to {widened} on the sweep sample)" if widened else
                           f" ({lo}..{hi}; it could not be widened on {len(sw.S)} rows)")
                        + ": no clear k; this k is where the search stopped, not a k the data chose")
            else:
                note = (f"the best k was the end of the range ({lo}..{hi}); widened once to {widened} on the "
                        f"sweep sample, the gap stops rising at k = {k_hat}")
        elif k_hat == lo and lo > 2:
            note = f"the best k is the start of the range ({lo}..{hi}); smaller k were not tried"
    by_k = {r["k"]: r for r in rows}
    rule_k = k_hat
    if rule_k >= 2:
        gap, se = by_k[rule_k]["gap"], float(np.hypot(by_k[rule_k]["gap_se"], sw.s_1))
    else:
        gap, se = 0.0, float(sw.s_1)
    structure = verdict(rule_k, gap, se, at_end)
    k = rule_k
    if structure == "none":
        # the pages still need clusters: the rule's k if it found one, else the range's smallest k
        # (on structureless data every k is an arbitrary cut into cells; the fewest cuts say least)
        k = rule_k if rule_k >= 2 else lo
        gap, se = by_k[k]["gap"], float(np.hypot(by_k[k]["gap_se"], sw.s_1))
        if not np.isfinite(gap):
            gap, se = 0.0, float(sw.s_1)
        why = ("no k beats one cluster (the gap rule answers k = 1)" if rule_k <= 1 else
               f"the gap at k = {rule_k} is within {GAP_SE_MIN:g} standard errors of one cluster's")
        note = (f"{why}: no cluster structure; k = {k} only gives the pages clusters to show, "
                "they are arbitrary cells" + (f"; {note}" if note else ""))
    return KChoice(k=int(k), rule_k=int(rule_k), structure=structure, gap=float(gap), gap_se=float(se),
                   note=note, scores=rows, reference=sw.reference, widened_to=widened)


def choose_k(scores):
    """The one-standard-error rule's k over sweep rows that carry ``gap`` and ``gap_se``.

    For the other algorithms' sweeps (:mod:`lib.algorithms`): k = 1 (no
    structure) falls back to the row with the largest gap, since an
    algorithm's run must still cut the rows.

    Parameters
    ----------
    scores : list of dict with ``k``, ``gap``, ``gap_se``

    Returns
    -------
    int
    """
    rows = sorted((r for r in scores if np.isfinite(r.get("gap", np.nan))), key=lambda r: r["k"])
    if not rows:
        raise ValueError("no k of the sweep has a gap")
    k = _rule(rows)
    return int(k if k >= 2 else max(rows, key=lambda r: r["gap"])["k"])


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
    from sklearn.cluster import KMeans

    init = restart_centres(Z, k, random_state, n_init, restart_sample)
    km = KMeans(n_clusters=k, init=init, n_init=1, random_state=random_state).fit(Z)
    return km.labels_.astype(np.int32), km.cluster_centers_.astype(np.float32), float(km.inertia_)


def restart_centres(Z, k, random_state=0, n_init=RESTARTS, restart_sample=RESTART_SAMPLE):
    """The centres of the best of ``n_init`` KMeans runs on a sample of ``Z``: where the run on all rows starts."""
    from sklearn.cluster import KMeans

    idx = sample_rows(len(Z), restart_sample, random_state)
    return KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(Z[idx]).cluster_centers_


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
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

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
