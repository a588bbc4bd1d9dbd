"""PCA by the covariance matrix, computed in row chunks.

The covariance of a d-dim descriptor is d x d (2560 x 2560 = 50 MB for
efficientnet), so it is built chunk by chunk in float32 BLAS with float64
accumulation and never needs a float64 copy of the descriptors. Its
eigendecomposition gives the whole explained-variance curve, which the app
shows, for the price of one pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mapped import row_blocks

VARIANCE_TARGET = 0.90
MAX_COMPONENTS = 64
MIN_COMPONENTS = 2
FLOOR_MIN_VARIANCE = 0.75  # the noise floor cuts only where it keeps this share of the variance
CHUNK_ROWS = 32768


@dataclass
class PCAModel:
    mean: np.ndarray          # (d,) float64
    components: np.ndarray    # (n_components, d) float32
    explained_variance_ratio: np.ndarray  # (d,) the whole curve, descending

    @property
    def n_components(self):
        return self.components.shape[0]

    @property
    def explained_variance(self):
        """Share of the variance kept by the chosen components."""
        return float(self.explained_variance_ratio[: self.n_components].sum())


def noise_floor_components(eigenvalues, n_rows):
    """Components whose singular value clears the Gavish–Donoho hard threshold.

    For a signal plus white noise of unknown level, singular values below
    ``omega(beta) * median`` are indistinguishable from noise (Gavish & Donoho
    2014, beta = dims / rows). Keeping them would add noise dimensions to
    every distance computed downstream.
    """
    ev = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None))[::-1]
    d = len(ev)
    beta = min(d, n_rows) / max(d, n_rows)
    omega = 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
    sv = np.sqrt(ev)
    return int((sv > omega * np.median(sv)).sum())


def choose_components(ratio, target=VARIANCE_TARGET, max_components=MAX_COMPONENTS,
                      min_components=MIN_COMPONENTS, noise_floor=None):
    """The fewest components whose cumulative explained variance reaches
    ``target``, but no more than clear the noise floor (if given, and if those
    keep :data:`FLOOR_MIN_VARIANCE` of the variance), clipped to
    ``[min_components, max_components]``.

    The cap keeps the neighbour search and clustering fast; the curve is
    stored so a user sees how much the cap cost.
    """
    cum = np.cumsum(ratio)
    n = int(np.searchsorted(cum, target - 1e-12) + 1)
    # the floor assumes a low-rank signal in white noise; where it would drop over a quarter of the
    # variance the spectrum is flat (a high-rank signal such as re-ID identity, or pure noise),
    # and cutting there threw away what tells two cars apart
    if noise_floor is not None and noise_floor > 0 and cum[min(noise_floor, len(cum)) - 1] >= FLOOR_MIN_VARIANCE:
        n = min(n, noise_floor)
    return int(np.clip(n, min_components, min(max_components, len(ratio))))


def fit_pca(X, target=VARIANCE_TARGET, max_components=MAX_COMPONENTS,
            chunk_rows=CHUNK_ROWS, progress=None):
    """Fit PCA on all rows of ``X``.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d), float32
    target, max_components : see :func:`choose_components`.
    chunk_rows : int
        Rows per BLAS call; bounds the extra memory to chunk_rows x d.
    progress : callable, optional
        Called with the number of rows done after each chunk.

    Returns
    -------
    PCAModel
    """
    n = X.shape[0]
    mean = column_sums(X, chunk_rows) / n
    return pca_from_scatter(mean, centred_scatter(X, mean, chunk_rows, progress), n, target, max_components)


def column_sums(X, chunk_rows=CHUNK_ROWS):
    """Sum of every column in float64, chunked (the first pass; also per row block on a Dask worker)."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for _, block in row_blocks(X, chunk_rows):
        total += block.sum(axis=0, dtype=np.float64)
    return total


def centred_scatter(X, mean, chunk_rows=CHUNK_ROWS, progress=None):
    """``(X - mean)^T (X - mean)`` in float64 from float32 BLAS products, chunked (the second pass)."""
    d = X.shape[1]
    mean32 = np.asarray(mean).astype(np.float32)
    cov = np.zeros((d, d), dtype=np.float64)
    for _, block in row_blocks(X, chunk_rows):
        block = block - mean32
        cov += block.T @ block
        if progress:
            progress(len(block))
    return cov


def pca_from_scatter(mean, scatter, n, target=VARIANCE_TARGET, max_components=MAX_COMPONENTS):
    """The PCA of ``n`` rows from their mean and centred scatter matrix (summed over any row blocks)."""
    d = len(mean)
    cov = scatter / max(n - 1, 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 0, None)
    total = eigval.sum()
    ratio = eigval / total if total > 0 else np.full(d, 1.0 / d)
    k = choose_components(ratio, target, max_components, noise_floor=noise_floor_components(eigval, n))
    comps = eigvec[:, order[:k]].T
    # fix the sign so that results do not flip between runs or BLAS builds
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1, signs)[:, None]
    return PCAModel(mean=mean, components=comps.astype(np.float32), explained_variance_ratio=ratio)


def transform(model, X, chunk_rows=CHUNK_ROWS):
    """Project rows onto the fitted components; float32 out, chunked."""
    out = np.empty((X.shape[0], model.n_components), dtype=np.float32)
    mean32 = model.mean.astype(np.float32)
    compT = np.ascontiguousarray(model.components.T)
    for start, block in row_blocks(X, chunk_rows):
        out[start:start + chunk_rows] = (block - mean32) @ compT
    return out
