"""Reading descriptor files and the paths CSV, including hostile input."""
import io
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import descriptors as D


def dump(tmp_path, obj, name="m.pickle", protocol=4):
    p = tmp_path / name
    p.write_bytes(pickle.dumps(obj, protocol=protocol))
    return p


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol, dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 4)
    got = D.load_array(dump(tmp_path, a, protocol=protocol))
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_numpy1_style_pickle_loads(tmp_path, protocol):
    # numpy 1.x wrote numpy.core.*; protocols 0-2 name globals as text lines
    raw = pickle.dumps(np.eye(3, dtype=np.float32), protocol=protocol)
    assert b"numpy._core.multiarray" in raw
    p = tmp_path / "old.pickle"
    p.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(D.load_array(p), np.eye(3))


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("make", [
    lambda m: Evil(os.system, f"touch {m}"),
    lambda m: Evil(eval, f"open({str(m)!r}, 'w')"),
    lambda m: Evil(__import__("subprocess").call, ["touch", str(m)]),
])
def test_code_running_pickles_are_refused_and_run_nothing(tmp_path, make):
    marker = tmp_path / "pwned"
    p = dump(tmp_path, make(marker))
    with pytest.raises(D.InputError, match="refused"):
        D.load_array(p)
    assert not marker.exists()


def test_object_array_is_refused(tmp_path):
    p = dump(tmp_path, np.array([[1, "a"]], dtype=object))
    with pytest.raises(D.InputError, match="object"):
        D.load_array(p)


def test_non_array_pickle_and_truncated_pickle(tmp_path):
    with pytest.raises(D.InputError, match="list"):
        D.load_array(dump(tmp_path, [1, 2, 3]))
    raw = pickle.dumps(np.ones((100, 10), np.float32), protocol=4)
    p = tmp_path / "cut.pickle"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(D.InputError, match="cut.pickle"):
        D.load_array(p)


def test_npy_is_read_without_pickle(tmp_path):
    p = tmp_path / "m.npy"
    np.save(p, np.ones((4, 3), np.float32))
    assert D.load_array(p).shape == (4, 3)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(D.InputError, match="obj.npy"):
        D.load_array(q)


def test_validate_shapes_dtypes_and_row_count(tmp_path):
    with pytest.raises(D.InputError, match="1-D"):
        D.validate(np.ones(5), "f")
    with pytest.raises(D.InputError, match="real numbers"):
        D.validate(np.ones((2, 2), dtype=complex), "f")
    with pytest.raises(D.InputError, match="has 3 rows but images_paths.csv has 4"):
        D.validate(np.ones((3, 2)), "f", n_rows=4)
    X, bad = D.validate(np.ones((3, 2), dtype=np.float64), "f", n_rows=3)
    assert X.dtype == np.float32 and bad == 0


def test_nonfinite_rows_are_counted_and_filled_with_column_mean():
    a = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, np.inf], [5.0, 6.0]])
    X, bad = D.validate(a, "f")
    assert bad == 2
    np.testing.assert_allclose(X[1], [3.0, 4.0])  # mean of 1, 3, 5
    np.testing.assert_allclose(X[2], [3.0, 4.0])  # mean of 2, 4, 6
    with pytest.raises(D.InputError, match="no row"):
        D.validate(np.full((2, 2), np.nan), "f")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=2, max_size=40))
def test_validate_always_returns_finite_or_refuses(values):
    a = np.array(values, dtype=np.float32).reshape(-1, 1) if len(values) % 2 else \
        np.array(values, dtype=np.float32).reshape(-1, 2)
    expected_bad = int((~np.isfinite(a).all(axis=1)).sum())
    try:
        X, bad = D.validate(a, "f")  # may fill ``a`` in place (no second 4 GB copy)
    except D.InputError as e:
        assert "no row" in str(e)
        return
    assert np.isfinite(X).all()
    assert bad == expected_bad


def write_csv(tmp_path, text):
    p = tmp_path / "images_paths.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text", [
    "paths\n/kaggle/input/x/raw_data/3/36191/a.jpg\n/k/raw_data/1/00012/b.jpg\n",
    "path_to_image\n/kaggle/input/x/raw_data/3/36191/a.jpg\n/k/raw_data/1/00012/b.jpg\n",
    "/kaggle/input/x/raw_data/3/36191/a.jpg\n/k/raw_data/1/00012/b.jpg\n",
    ",paths\n0,/kaggle/input/x/raw_data/3/36191/a.jpg\n1,/k/raw_data/1/00012/b.jpg\n",
    "paths\nC:\\data\\raw_data\\3\\36191\\a.jpg\r\n/k/raw_data/1/00012/b.jpg\r\n",
])
def test_paths_csv_variants(tmp_path, text):
    il = D.read_paths(write_csv(tmp_path, text))
    assert il.paths == ["3/36191/a.jpg", "1/00012/b.jpg"]
    assert il.vehicle_ids == ["36191", "00012"]


@pytest.mark.parametrize("bad", ["/x/raw_data/../36191/a.jpg", "a.jpg", "/x/3/../a.jpg"])
def test_paths_that_escape_or_lack_parts_are_refused(tmp_path, bad):
    with pytest.raises(D.InputError, match="images_paths.csv"):
        D.read_paths(write_csv(tmp_path, f"paths\n/k/raw_data/1/00012/b.jpg\n{bad}\n"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./\\:0123456789", min_size=1, max_size=30))
def test_relative_path_never_escapes(raw):
    try:
        rel, vid = D.relative_image_path(raw + ".jpg")
    except D.InputError:
        return
    parts = rel.split("/")
    assert len(parts) == 3 and ".." not in parts and "." not in parts
    assert not rel.startswith("/")


def test_resolve_image_refuses_symlink_escape(tmp_path):
    root = tmp_path / "raw_data"
    (root / "1" / "00001").mkdir(parents=True)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"x")
    os.symlink(secret, root / "1" / "00001" / "link.jpg")
    (root / "1" / "00001" / "ok.jpg").write_bytes(b"x")
    assert D.resolve_image(root, "1/00001/link.jpg") is None
    assert D.resolve_image(root, "1/00001/ok.jpg") == str((root / "1/00001/ok.jpg").resolve())


def test_discover_uses_file_names_not_a_fixed_list(tmp_path):
    d = tmp_path / "descriptors"
    d.mkdir()
    np.save(d / "mdc_color.npy", np.ones((2, 2)))
    (d / "osnet.pickle").write_bytes(pickle.dumps(np.ones((2, 3))))
    (d / "notes.txt").write_text("x")
    assert list(D.discover(tmp_path)) == ["mdc_color", "osnet"]
