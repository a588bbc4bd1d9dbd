"""The range of k a load sweeps, checked before anything is read or written.

Any ``k_min <= k_max`` (a single k included) is a valid range; k below 2, an
inverted range, or a k that is not below the number of images is refused with
an :class:`~lib.descriptors.InputError` naming ``--k-min/--k-max``.
"""
from __future__ import annotations

from pathlib import Path

from .descriptors import PATHS_CSV, InputError, read_paths

OPTION = "--k-min/--k-max"


def check_range(k_min, k_max, n_rows=None):
    """The k values ``k_min..k_max`` as a tuple, or :class:`InputError` saying what is wrong.

    ``n_rows``: the number of images, when known (k must be below it).
    """
    if k_min < 2 or k_max < 2:
        raise InputError(OPTION, f"k must be at least 2 (got {k_min}..{k_max})")
    if k_min > k_max:
        raise InputError(OPTION, f"--k-min {k_min} is greater than --k-max {k_max}")
    if n_rows is not None and k_max >= n_rows:
        raise InputError(OPTION, f"k must be below the number of images ({n_rows} in {PATHS_CSV}); "
                                 f"got --k-max {k_max}")
    return tuple(range(k_min, k_max + 1))


def check_ks(ks, n_rows=None):
    """The same check for a :class:`lib.pipeline.LoadConfig`'s ``ks`` (any non-empty set of k values)."""
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise InputError(OPTION, "no k to sweep")
    check_range(ks[0], ks[-1], n_rows)
    return tuple(ks)


def count_rows(data_dir):
    """The number of images a dataset folder lists (rows of its ``images_paths.csv``)."""
    return len(read_paths(Path(data_dir) / PATHS_CSV).paths)
