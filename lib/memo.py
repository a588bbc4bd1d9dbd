"""Results of costly, deterministic steps kept on disk under a hash of their inputs.

The first start builds a first look and then the full load of the same data;
the full load's k sweeps and 2-D maps of the four models would be the first
look's again, computed from identical inputs (the same reduced vectors,
neighbours, parameters and seed give the same bytes). A result is stored
under a hash of everything it depends on, so it is reused only when all of
that is the same; anything else is a miss and is computed.

The folder is the loader's own, beside the database (pickles: never point it
at files from elsewhere).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np


class Memo:
    """A folder of results keyed by their inputs.

    Parameters
    ----------
    directory : str or Path
        Created when first written to.
    """

    def __init__(self, directory):
        self.directory = Path(directory)

    @staticmethod
    def key(step, *inputs):
        """A hex digest of ``step`` and its ``inputs`` (arrays by dtype, shape and bytes; the rest by repr)."""
        h = hashlib.sha256(step.encode())
        for x in inputs:
            if isinstance(x, np.ndarray):
                h.update(f"|{x.dtype.str}{x.shape}|".encode())
                h.update(np.ascontiguousarray(x).data)
            else:
                h.update(f"|{x!r}|".encode())
        return h.hexdigest()

    def _path(self, key):
        return self.directory / f"{key}.pickle"

    def get(self, key):
        """The stored result, or None."""
        try:
            with open(self._path(key), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None

    def put(self, key, value):
        """Store ``value`` (written to a temporary name, then renamed: never half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self._path(key))
