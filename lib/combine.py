"""Combinations of models: concatenated reduced blocks, every part weighing the same.

A combination's vector is the concatenation, over its parts, of the part's
PCA-reduced vector times the part's weight ``1 / sqrt(total variance of the
reduced block)``. Each block then has total variance 1, so a part with more
dimensions or larger values does not drown the others in every distance.
"""
from __future__ import annotations

import numpy as np

from .descriptors import InputError

SEP = "+"
# the two networks trained on this data (the pair others ranked best by eye),
# and all four together; a default whose parts are not all loaded is skipped
DEFAULTS = ("vdc_type+vdc_color", "efficientnet-b7+osnet+vdc_color+vdc_type")


def parts(name):
    """``"a+b"`` -> ``["a", "b"]``."""
    return [p.strip() for p in name.split(SEP) if p.strip()]


def resolve(explicit, models, where):
    """The combinations to build.

    Parameters
    ----------
    explicit : sequence of str or None
        Given by the user (``--combine``); None = the defaults, empty = none.
    models : sequence of str
        The models of this load.
    where : path named in errors (the descriptors folder)

    Returns
    -------
    list of str, each a canonical name ``part+part...``

    Raises
    ------
    InputError
        An explicit combination with fewer than two distinct parts, or a part
        that is not among ``models``.
    """
    out = []
    for name in (DEFAULTS if explicit is None else explicit):
        ps = parts(name)
        if len(set(ps)) != len(ps) or len(ps) < 2:
            raise InputError(where, f"combination {name!r} needs two or more different models")
        missing = [p for p in ps if p not in models]
        if missing:
            if explicit:
                raise InputError(where, f"combination {name!r}: no descriptor file for {', '.join(missing)}")
            continue
        canon = SEP.join(ps)
        if canon not in out:
            out.append(canon)
    return out


def block_weight(Z):
    """``1 / sqrt(total variance)`` of a block (1 for a constant block)."""
    total = float(np.var(Z, axis=0, dtype=np.float64).sum())
    return 1.0 / np.sqrt(total) if total > 0 else 1.0


def combine(blocks):
    """Concatenate weighted blocks.

    Parameters
    ----------
    blocks : list of numpy.ndarray, each (n, d_i)

    Returns
    -------
    Z : numpy.ndarray, (n, sum d_i), float32
    weights : list of float, one per block
    """
    weights = [block_weight(B) for B in blocks]
    return stack(blocks, weights), weights


def stack(blocks, weights):
    """The weighted blocks side by side, float32 (also per block of rows, on a Dask worker)."""
    return np.hstack([np.asarray(B, dtype=np.float32) * np.float32(w) for B, w in zip(blocks, weights)])
