"""The distance each model is searched and clustered with: ``euclidean`` or ``cosine``.

Cosine is done by L2-normalising every descriptor row before the PCA
(:func:`normalise_rows`); Euclidean distance between unit vectors ranks
pairs exactly as cosine similarity does (``|a - b|^2 = 2 - 2 cos(a, b)``),
so every later step (PCA, k sweep, KMeans, neighbours, map, outliers) works
under cosine without a change. The PCA keeps most of the variance, not all
of it, so the stored neighbours approximate cosine on the full descriptors
(checked against exact cosine search in the tests).

Default (:func:`default_metric`): ``cosine`` for re-identification
descriptors, which are trained for cosine similarity (the model's name says
so: ``osnet``, ``reid``, ``re-id``), and for descriptors whose rows are
already (nearly) unit length, where the two metrics agree anyway and cosine
is the honest name; ``euclidean`` for the rest. Euclidean distance on
unnormalised re-ID rows mixes the vector norm (image quality, crop size)
into "is this the same car".
"""
from __future__ import annotations

import re

import numpy as np

from .mapped import in_memory

METRICS = ("euclidean", "cosine")
REID_NAME = re.compile(r"osnet|re-?id", re.IGNORECASE)
UNIT_TOLERANCE = 0.01   # rows count as unit length when the middle 98% of norms is within 1% of 1
CHECK_ROWS = 5000


def default_metric(model, X=None):
    """``cosine`` for re-ID models (by name) and for rows already of unit length, else ``euclidean``.

    Parameters
    ----------
    model : str
    X : numpy.ndarray, shape (n, d), optional
        The descriptors; only up to :data:`CHECK_ROWS` evenly spaced rows are looked at.
    """
    if REID_NAME.search(str(model)):
        return "cosine"
    if X is not None and len(X):
        rows = np.asarray(X[np.linspace(0, len(X) - 1, min(len(X), CHECK_ROWS)).astype(int)], dtype=np.float64)
        norms = np.linalg.norm(rows, axis=1)
        norms = norms[np.isfinite(norms)]
        if len(norms) and np.all(np.abs(np.percentile(norms, [1, 99]) - 1) <= UNIT_TOLERANCE):
            return "cosine"
    return "euclidean"


def check(metric):
    """Return ``metric`` lower-cased if known, else ValueError."""
    m = str(metric).strip().lower()
    if m not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return m


def parse(specs):
    """``["osnet=cosine", "vdc_type=euclidean"]`` -> ``{"osnet": "cosine", ...}``; ValueError on a bad one."""
    out = {}
    for spec in specs or ():
        model, sep, metric = str(spec).partition("=")
        if not sep or not model.strip():
            raise ValueError(f"--metric wants MODEL=METRIC, got {spec!r}")
        out[model.strip()] = check(metric)
    return out


def normalise_rows(X, chunk_rows=65536):
    """Scale every row to unit length, in place when ``X`` is writable (else in a copy).

    Rows of length 0 stay 0. Chunked: no second array of the descriptors' size.

    Returns
    -------
    numpy.ndarray, float32, the same object as ``X`` when it was writable float32
    """
    if X.dtype != np.float32 or not X.flags.writeable or not X.flags.c_contiguous:
        X = in_memory(X)
    for s in range(0, len(X), chunk_rows):
        block = X[s:s + chunk_rows]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        block /= np.where(norms > 0, norms, 1.0)[:, None].astype(np.float32)
    return X
