"""Descriptors as row blocks: one ``.npy`` file per block of rows, for Dask workers to read on their own.

A pickle can only be read whole, by one process, so the distributed load
converts every descriptor file once: validated (NaN/inf filled with the column
mean, as :func:`lib.descriptors.validate` does) and cut into blocks of
``block_rows`` rows. A worker then memory-maps just its block. The blocks of a
file are kept under a name made of the file's name, size and modification
time, so a second load of the same data reuses them; a folder appears only
when every block of it is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import descriptors

BLOCK_ROWS = 65_536
MANIFEST = "manifest.json"


@dataclass
class BlockSet:
    """One descriptor file as row blocks."""

    root: Path
    n_rows: int
    dim: int
    starts: list          # first row of every block, then n_rows

    @property
    def files(self):
        return [str(self.root / f"{i:05d}.npy") for i in range(len(self.starts) - 1)]

    @property
    def bounds(self):
        """``(start, stop)`` of every block."""
        return list(zip(self.starts[:-1], self.starts[1:]))

    def nonfinite(self):
        """Rows that held NaN or inf in the source file."""
        return np.load(self.root / "nonfinite.npy")

    def sample(self, size):
        """Up to ``size`` evenly spaced rows (for the metric's unit-length check)."""
        idx = np.linspace(0, self.n_rows - 1, min(self.n_rows, size)).astype(np.int64)
        out = []
        for (start, stop), f in zip(self.bounds, self.files):
            sel = idx[(idx >= start) & (idx < stop)] - start
            if len(sel):
                out.append(np.load(f, mmap_mode="r")[sel])
        return np.concatenate(out)


def row_starts(n_rows, block_rows=BLOCK_ROWS):
    """First row of every block of ``block_rows`` rows, then ``n_rows``."""
    return list(range(0, n_rows, block_rows)) + [n_rows]


def source_key(path):
    """A name for a descriptor file's blocks: its name, size and modification time."""
    st = Path(path).stat()
    digest = hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{descriptors.model_key(Path(path).stem)}-{digest}"


def convert(path, out_dir, n_rows, block_rows=BLOCK_ROWS):
    """The row blocks of one descriptor file, written under ``out_dir`` unless already there.

    Parameters
    ----------
    path : str or Path
        A ``.pickle``/``.pkl`` or ``.npy`` descriptor file.
    out_dir : str or Path
        Where block folders live; on a cluster, storage every worker can read.
    n_rows : int
        The number of rows the paths CSV lists.
    block_rows : int

    Returns
    -------
    BlockSet

    Raises
    ------
    lib.descriptors.InputError
        As :func:`lib.descriptors.validate`; nothing is left behind then.
    """
    dest = Path(out_dir) / f"{source_key(path)}-{block_rows}"
    if (dest / MANIFEST).exists():
        return read(dest)
    X, nonfinite = descriptors.validate(descriptors.load_array(path), path, n_rows=n_rows)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        starts = row_starts(len(X), block_rows)
        for i, (start, stop) in enumerate(zip(starts[:-1], starts[1:])):
            np.save(tmp / f"{i:05d}.npy", np.ascontiguousarray(X[start:stop], dtype=np.float32))
        np.save(tmp / "nonfinite.npy", nonfinite)
        (tmp / MANIFEST).write_text(json.dumps({"source": str(path), "n_rows": len(X), "dim": X.shape[1],
                                                "starts": starts}))
        try:
            os.replace(tmp, dest)
        except OSError:  # another load wrote the same blocks first
            if not (dest / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read(dest)


def read(root):
    """The :class:`BlockSet` written at ``root``."""
    m = json.loads((Path(root) / MANIFEST).read_text())
    return BlockSet(Path(root), m["n_rows"], m["dim"], m["starts"])


def read_block(file, cosine=False):
    """One block's rows as float32, L2-normalised when the model is compared by cosine."""
    from .metric import normalise_rows

    X = np.load(file, mmap_mode="r")
    return normalise_rows(X) if cosine else np.asarray(X, dtype=np.float32)
