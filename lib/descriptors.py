"""Reading a dataset folder: descriptor files, the paths CSV, the image root.

A dataset folder holds ``descriptors/`` (one pickled or ``.npy`` 2-D float
array per model), ``images_paths.csv`` (one path per descriptor row, written on
another machine) and ``raw_data/<folder>/<vehicle id>/<file>.jpg``.

Descriptor pickles come from elsewhere, and unpickling can run arbitrary code,
so they are read through an unpickler that resolves an exact allow-list of
(module, name) pairs: the ones numpy 1.x and 2.x array pickles reference.
"""
from __future__ import annotations

import csv
import os
import pickle
import re
import sys
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .mapped import in_memory, row_blocks

DESCRIPTOR_SUFFIXES = (".pickle", ".pkl", ".npy")
PATHS_CSV = "images_paths.csv"
IMAGE_ROOT = "raw_data"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# A cap well above the real set (2560 dims, 416k rows) that still refuses a
# file that would exhaust the machine before we learn its shape.
MAX_DESCRIPTOR_BYTES = 48 * 2**30
MAX_DIM = 65536
MAX_CSV_BYTES = 2 * 2**30  # the real CSV is about 40 MB
# names the database uses for something other than a descriptor file
RESERVED_MODELS = ("consensus",)


class InputError(Exception):
    """A problem with the user's data, reported as one line naming the file."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _checked_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("object arrays are not allowed")
    return dt


class _PendingArray:
    """Stands in for the ndarray while unpickling, so its data buffer (often a
    memory map of the file) becomes the array without a copy."""

    array = None

    def __setstate__(self, state):
        if len(state) == 5:
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(raw, (bytes, bytearray, memoryview, np.ndarray)):
            raise pickle.UnpicklingError("array data is not a byte buffer")
        self.array = _checked_frombuffer(raw, dtype, shape, "F" if fortran else "C")


def _checked_reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return _PendingArray()


def _checked_frombuffer(buf, dtype, shape, order):
    """The array over ``buf`` (no copy), as numpy's own ``_frombuffer`` builds it."""
    flat = np.frombuffer(buf, dtype=_checked_dtype(dtype), count=int(np.prod(shape)))
    return flat.reshape(shape, order=order)


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` in a pickle: an argument of
    ``_reconstruct``, but not callable, so a pickle cannot allocate an
    arbitrary uninitialised array by calling the class."""


_NDARRAY = _NdarrayToken()


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as numpy's protocol-2 pickles use it (array bytes as
    latin-1 text), and nothing else: no other codec is reachable."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin-1 text")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _checked_dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _core in ("numpy._core", "numpy.core"):  # numpy 2.x and 1.x pickles
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _checked_reconstruct
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _checked_frombuffer

MAP_THRESHOLD = 1 << 20  # byte strings at least this long are memory-mapped, not read


class SafeUnpickler(pickle._Unpickler):
    """Unpickler that resolves only the globals a numpy array pickle needs.

    Python's own implementation, so that large byte strings (the array data)
    can be memory-mapped from the file instead of read into memory: a 4 GB
    descriptor file then costs no more than its float32 array.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path):
        super().__init__(file)
        self._raw_file = file
        self._path = str(path)

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name} (not a plain numpy array pickle)"
            ) from None

    def _bytes(self, n):
        frame = self._unframer.current_frame
        if frame is not None and frame.tell() < len(frame.getbuffer()):
            return self.read(n)  # inside a small frame: ordinary read
        self._unframer.current_frame = None
        if n < MAP_THRESHOLD:
            return self.read(n)
        offset = self._raw_file.tell()
        if offset + n > os.fstat(self._raw_file.fileno()).st_size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self._raw_file.seek(offset + n)
        return np.memmap(self._path, dtype=np.uint8, mode="r", offset=offset, shape=(n,))

    def _load_binbytes(self):
        self.append(self._bytes(struct.unpack("<I", self.read(4))[0]))

    def _load_binbytes8(self):
        n = struct.unpack("<Q", self.read(8))[0]
        if n > sys.maxsize:
            raise pickle.UnpicklingError("BINBYTES8 exceeds system's maximum size")
        self.append(self._bytes(n))

    dispatch[pickle.BINBYTES[0]] = _load_binbytes
    dispatch[pickle.BINBYTES8[0]] = _load_binbytes8
    dispatch[pickle.BYTEARRAY8[0]] = _load_binbytes8


def safe_load_pickle(path):
    """Load a pickled numpy array without running any other code.

    Large arrays come back as read-only views of a memory map of the file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InputError
        If the pickle references anything outside the allow-list, is
        truncated, or does not hold a numpy array.
    """
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, path).load()
    except Exception as e:  # whatever a hostile byte stream provokes, it is the file's fault
        detail = "the file ends early (truncated?)" if isinstance(e, (EOFError, struct.error)) else str(e) or type(e).__name__
        raise InputError(path, f"cannot read pickle: {detail}") from None
    if isinstance(obj, _PendingArray):
        obj = obj.array
    if not isinstance(obj, np.ndarray):
        raise InputError(path, f"holds {type(obj).__name__}, expected a numpy array")
    return obj


def load_array(path):
    """Read one descriptor file (``.pickle``/``.pkl`` or ``.npy``) unvalidated."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if size > MAX_DESCRIPTOR_BYTES:
        raise InputError(path, f"is {size / 2**30:.1f} GiB, over the "
                               f"{MAX_DESCRIPTOR_BYTES / 2**30:.0f} GiB cap")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False, mmap_mode="r")
        except Exception as e:  # a hostile header is the file's fault, never a traceback
            raise InputError(path, f"cannot read .npy: {e}") from None
    return safe_load_pickle(path)


def validate(arr, path, n_rows=None):
    """Check a descriptor array and return it as C-ordered float32.

    A C-ordered float32 input (often a read-only memory map of the file) is
    returned as is: no second copy of a multi-GB matrix. Non-finite values
    (NaN, inf) are replaced by the column's mean over finite values (in place
    if writable, else in a copy), so that the row keeps its place in every
    model's geometry; which rows were touched is returned, so that the load
    flags them (as outliers with that cause) instead of hiding them.

    Parameters
    ----------
    arr : numpy.ndarray
    path : str or Path
        Named in errors.
    n_rows : int, optional
        Required row count (the paths CSV's).

    Returns
    -------
    X : numpy.ndarray of float32, shape (n, d)
    nonfinite : numpy.ndarray of bool, shape (n,)
        Rows that held NaN or inf.
    """
    check(arr, path, n_rows)
    n, d = arr.shape
    X = arr if arr.dtype == np.float32 and arr.flags.c_contiguous else in_memory(arr)
    del arr
    nonfinite = np.zeros(n, dtype=bool)
    # chunked so a 4 GB matrix never gets a same-size boolean twin
    for start, block in row_blocks(X, 65536):
        nonfinite[start:start + 65536] = ~np.isfinite(block).all(axis=1)
    bad_rows = int(nonfinite.sum())
    if bad_rows:
        if bad_rows == n:
            raise InputError(path, "has no row without NaN or inf")
        if not X.flags.writeable:  # a memory map of the user's file: fill a copy
            X = in_memory(X)
        col_mean = np.zeros(d, dtype=np.float64)
        col_count = np.zeros(d, dtype=np.int64)
        for start in range(0, n, 65536):
            block = X[start:start + 65536]
            finite = np.isfinite(block)
            col_mean += np.where(finite, block, 0).sum(axis=0, dtype=np.float64)
            col_count += finite.sum(axis=0)
        col_mean = (col_mean / np.maximum(col_count, 1)).astype(np.float32)
        for start in range(0, n, 65536):
            block = X[start:start + 65536]
            np.copyto(block, np.broadcast_to(col_mean, block.shape), where=~np.isfinite(block))
    return X, nonfinite


def check(arr, path, n_rows=None):
    """Raise InputError unless ``arr`` is a non-empty 2-D real array with ``n_rows`` rows."""
    if arr.ndim != 2:
        raise InputError(path, f"is a {arr.ndim}-D array, expected 2-D (rows x dims)")
    if arr.dtype.kind not in "fiu":
        raise InputError(path, f"has dtype {arr.dtype}, expected real numbers")
    n, d = arr.shape
    if n == 0 or d == 0:
        raise InputError(path, f"is empty ({n} x {d})")
    if d > MAX_DIM:
        raise InputError(path, f"has {d} dims, over the {MAX_DIM} cap")
    if n_rows is not None and n != n_rows:
        raise InputError(path, f"has {n} rows but {PATHS_CSV} has {n_rows}")


def discover(data_dir):
    """List the descriptor files of a dataset folder as ``{model: path}``.

    The model name is the file name without its suffix; nothing about names
    or dimensions is assumed.
    """
    ddir = Path(data_dir) / "descriptors"
    if not ddir.is_dir():
        raise InputError(ddir, "no such folder (expected one descriptor file per model)")
    found, keys = {}, {}
    for p in sorted(ddir.iterdir()):
        if p.suffix.lower() in DESCRIPTOR_SUFFIXES and p.is_file():
            if p.stem in found:
                raise InputError(p, f"second file for model {p.stem!r}")
            if p.stem.lower() in RESERVED_MODELS:
                raise InputError(p, f"model name {p.stem!r} is reserved (rename the file)")
            key = model_key(p.stem)
            if not key or key in keys:
                other = f" as {keys[key]!r} does" if key in keys else ""
                raise InputError(p, f"model name {p.stem!r} maps to table name {key!r}{other} (rename the file)")
            keys[key] = p.stem
            found[p.stem] = p
    if not found:
        raise InputError(ddir, "holds no .pickle or .npy descriptor file")
    return found


def model_key(model):
    """A model name reduced to ``[0-9a-z_]``: safe inside a table name."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", model).strip("_").lower()


def _looks_like_path(value):
    v = value.strip().replace("\\", "/")
    return "/" in v and v.lower().endswith(IMAGE_SUFFIXES)


@dataclass
class ImageList:
    """Rows of the paths CSV mapped to the image root."""

    paths: list        # relative to the image root: '<folder>/<vehicle id>/<file>'
    vehicle_ids: list  # the vehicle folder name, as written (keeps leading zeros)

    def __len__(self):
        return len(self.paths)


def relative_image_path(raw, csv_path=None, row=None):
    """Map a foreign absolute path to ``<folder>/<vehicle id>/<file>``.

    The CSV was written on another machine, so only the trailing three parts
    are meaningful. Parts that could climb out of the image root are refused.
    """
    parts = [p for p in raw.strip().replace("\\", "/").split("/") if p]
    where = f"row {row}: " if row is not None else ""
    if len(parts) < 3:
        raise InputError(csv_path, f"{where}path {raw!r} has no <folder>/<vehicle id>/<file> tail")
    tail = parts[-3:]
    if any(p in (".", "..") or ":" in p for p in tail):
        raise InputError(csv_path, f"{where}path {raw!r} points outside the image root")
    if any(ord(c) < 32 or c == "\x7f" for c in "".join(tail)):  # NUL breaks every file call
        raise InputError(csv_path, f"{where}path {raw!r} has a control character")
    return "/".join(tail), tail[1]


def read_paths(csv_path):
    """Read ``images_paths.csv``: a header (any name) or none, one path per row.

    If the file has several columns (e.g. a pandas index), the column whose
    values look like image paths is used.
    """
    csv_path = Path(csv_path)
    try:
        if csv_path.stat().st_size > MAX_CSV_BYTES:
            raise InputError(csv_path, f"is over the {MAX_CSV_BYTES / 2**30:.0f} GiB cap")
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as e:
        raise InputError(csv_path, f"cannot read: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(csv_path, f"is not a text CSV: {e}") from None
    if not rows:
        raise InputError(csv_path, "is empty")
    first_data = 0 if any(_looks_like_path(c) for c in rows[0]) else 1
    if first_data >= len(rows):
        raise InputError(csv_path, "has a header but no paths")
    sample = rows[first_data]
    cols = [i for i, c in enumerate(sample) if _looks_like_path(c)]
    if not cols:
        raise InputError(csv_path, f"row {first_data + 1}: no image path in {sample!r}")
    col = cols[-1]
    paths, vids = [], []
    for i, r in enumerate(rows[first_data:], start=first_data + 1):
        if col >= len(r):
            raise InputError(csv_path, f"row {i}: missing path column")
        rel, vid = relative_image_path(r[col], csv_path, i)
        paths.append(rel)
        vids.append(vid)
    return ImageList(paths, vids)


def resolve_image(image_root, rel_path):
    """Absolute path of an image under the root, or None if it would escape it.

    Symbolic links are followed and the result must still lie under the root.
    """
    return resolve_under(os.path.realpath(image_root), rel_path)


def _real_folder(real_root, parts, folders):
    """``os.path.realpath`` of the folder ``parts`` under ``real_root``, each level kept in ``folders``:
    a level is its resolved parent joined with its name, resolved again only when it is a link or '..'."""
    folder = folders.get(parts)
    if folder is None:
        if not parts:
            folder = real_root
        else:
            folder = os.path.join(_real_folder(real_root, parts[:-1], folders), parts[-1])
            if parts[-1] == ".." or os.path.islink(folder):
                folder = os.path.realpath(folder)
        folders[parts] = folder
    return folder


def resolve_under(real_root, rel_path, folders=None):
    """:func:`resolve_image` for a root already resolved by ``os.path.realpath`` (a loop over many images).

    ``folders``: a dict this fills with the resolved path of every folder level,
    so that an image costs an ``lstat`` of its file and of any folder not seen
    yet, instead of one per component of its absolute path (at 414,575 images
    in random order few vehicle folders repeat within a batch, but their
    parents do).
    """
    parts = PurePosixPath(rel_path).parts
    if folders is None or not parts or parts[-1] == "..":
        full = os.path.realpath(os.path.join(real_root, *parts))
    else:
        full = os.path.join(_real_folder(real_root, parts[:-1], folders), parts[-1])
        if os.path.islink(full):
            full = os.path.realpath(full)
    if os.path.commonpath([real_root, full]) != real_root:
        return None
    return full
