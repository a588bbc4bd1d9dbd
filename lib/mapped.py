"""Reading a memory-mapped descriptor file in row blocks without keeping its pages.

The loader maps a descriptor file instead of reading it (:mod:`lib.descriptors`),
and passes over it a few times in blocks (NaN check, PCA's mean and scatter,
projection). Each page read stays in the process's resident set until the
map is gone: efficientnet-b7's 4 GB file at full scale made 4 GB of the
loader's peak resident memory although no block was needed twice at once.
:func:`row_blocks` hands the pages of each block back once the caller is
done with it; the kernel keeps them in its page cache, so the next pass reads
them again from memory, not from disk.
"""
from __future__ import annotations

import mmap

import numpy as np


def _read_only_map(X):
    """The read-only ``mmap.mmap`` under ``X``, or None (an array in memory, or a writable map)."""
    obj, read_only = X, False
    while obj is not None:
        if isinstance(obj, mmap.mmap):
            return obj if read_only else None
        if isinstance(obj, np.memmap) and obj.mode == "r":
            read_only = True  # dropping pages of a copy-on-write map would lose its changes
        obj = getattr(obj, "base", None)
    return None


def row_blocks(X, chunk_rows):
    """Yield ``(start, X[start:start + chunk_rows])`` over all rows.

    When ``X`` is a C-contiguous view of a read-only memory map, the pages of
    each block are released (``madvise(MADV_DONTNEED)``) when the caller asks
    for the next one: the resident memory of a pass stays at about one block.
    """
    mm = _read_only_map(X) if X.flags.c_contiguous and hasattr(mmap, "MADV_DONTNEED") else None
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data if mm is not None else 0
    for start in range(0, X.shape[0], chunk_rows):
        block = X[start:start + chunk_rows]
        yield start, block
        if mm is not None and block.nbytes:
            # from the page the block starts in (the block before is done) to the last page it fills
            # (one it shares with the next block goes with that one)
            first = (block.ctypes.data - base) // mmap.PAGESIZE * mmap.PAGESIZE
            end = (block.ctypes.data - base + block.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
            if end > first:
                mm.madvise(mmap.MADV_DONTNEED, first, end - first)


def in_memory(X, dtype=np.float32, chunk_rows=65536):
    """A writable C-ordered copy of ``X``, filled block by block (:func:`row_blocks`):
    the resident memory is the copy's, not the copy's and the whole file's."""
    out = np.empty(X.shape, dtype=dtype)
    for start, block in row_blocks(X, chunk_rows):
        out[start:start + chunk_rows] = block
    return out
