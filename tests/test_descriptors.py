"""Reading descriptor files and the paths CSV, including hostile input."""
import io
import os
import pickle
import warnings

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
    assert X.dtype == np.float32 and not bad.any()


def test_nonfinite_rows_are_counted_and_filled_with_column_mean():
    a = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, np.inf], [5.0, 6.0]])
    X, bad = D.validate(a, "f")
    assert bad.tolist() == [False, True, True, False]
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
    assert int(bad.sum()) == expected_bad


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


def test_resolving_with_the_folders_kept_gives_the_same_answers(tmp_path):
    """The loop over many images keeps each folder's resolved path; links at any level still count."""
    root = tmp_path / "raw_data"
    (root / "1" / "00001").mkdir(parents=True)
    (root / "1" / "00001" / "ok.jpg").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere" / "a.jpg", root / "1" / "00001" / "out.jpg")  # a file out of the root
    os.symlink(root / "1" / "00001" / "ok.jpg", root / "1" / "00001" / "in.jpg")  # a file inside it
    os.symlink(tmp_path / "elsewhere", root / "1" / "00002")  # a folder out of the root
    os.symlink(root / "1" / "00001", root / "1" / "00003")  # a folder inside it
    real = os.path.realpath(root)
    rels = ["1/00001/ok.jpg", "1/00001/out.jpg", "1/00001/in.jpg", "1/00002/a.jpg", "1/00003/ok.jpg",
            "1/00003/out.jpg", "1/00001/missing.jpg", "1/00001/..", "1/00001/../../..", "ok.jpg",
            "1/00002/../00001/ok.jpg", "1/00003/../00001/in.jpg", "/etc/hostname"]
    folders = {}
    kept = [D.resolve_under(real, rel, folders) for rel in rels + rels]
    assert kept == [D.resolve_under(real, rel) for rel in rels + rels]
    assert kept[:6] == [str(root / "1/00001/ok.jpg"), None, str(root / "1/00001/ok.jpg"), None,
                        str(root / "1/00001/ok.jpg"), None]
    # every folder level once: the root, 1, its three vehicles, the levels reached through '..', and /etc
    assert set(folders) == {(), ("1",), ("1", "00001"), ("1", "00002"), ("1", "00003"), ("1", "00002", ".."),
                            ("1", "00002", "..", "00001"), ("1", "00003", ".."), ("1", "00003", "..", "00001"),
                            ("/",), ("/", "etc")}
    assert folders[("1", "00002", "..")] == os.path.realpath(tmp_path)  # a link's '..' is its target's parent


def test_discover_uses_file_names_not_a_fixed_list(tmp_path):
    d = tmp_path / "descriptors"
    d.mkdir()
    np.save(d / "mdc_color.npy", np.ones((2, 2)))
    (d / "osnet.pickle").write_bytes(pickle.dumps(np.ones((2, 3))))
    (d / "notes.txt").write_text("x")
    assert list(D.discover(tmp_path)) == ["mdc_color", "osnet"]


# --- hostile pickles: each names a callable outside the allow-list, in every way a pickle can ---

def numpy1_pickle(a, protocol):
    """The bytes numpy 1.x writes: the same opcodes, globals under ``numpy.core``."""
    real = pickle.whichmodule

    def numpy1_module(obj, name):
        mod = real(obj, name)
        return mod.replace("numpy._core", "numpy.core", 1) if mod.startswith("numpy._core") else mod

    buf = io.BytesIO()
    pickle.whichmodule = numpy1_module  # numpy 2 keeps numpy.core.* as aliases of numpy._core.*
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 on numpy.core
            pickle._Pickler(buf, protocol=protocol).dump(a)
    finally:
        pickle.whichmodule = real
    raw = buf.getvalue()
    assert b"numpy.core" in raw and b"numpy._core" not in raw
    return raw


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("numpy_major", [1, 2])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "large"])
def test_numpy_1_and_2_pickles_of_every_protocol_and_layout_load(tmp_path, protocol, numpy_major, layout):
    base = np.arange(600 * 440, dtype=np.float32).reshape(600, 440)  # 1 MB: memory-mapped, not read
    a = {"C": base[:5, :4].copy(), "F": np.asfortranarray(base[:5, :4]), "strided": base[:10:2, :8:2],
         "large": base}[layout]
    raw = numpy1_pickle(a, protocol) if numpy_major == 1 else pickle.dumps(a, protocol=protocol)
    p = tmp_path / "m.pickle"
    p.write_bytes(raw)
    got = D.load_array(p)
    np.testing.assert_array_equal(got, a)
    assert got.dtype == a.dtype


def opcode_pickle(module, name, arg, how):
    """A hand-written pickle calling ``module.name(arg)`` through one of the opcodes that resolve globals."""
    m, n, a = module.encode(), name.encode(), repr(arg).encode()
    if how == "GLOBAL+REDUCE":  # protocol 0-3 style
        return b"c" + m + b"\n" + n + b"\n(V" + arg.encode() + b"\ntR."
    if how == "INST":  # protocol 0 instance creation calls the class
        return b"(V" + arg.encode() + b"\ni" + m + b"\n" + n + b"\n."
    if how == "STACK_GLOBAL":  # protocol 4+ style
        return (b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93"
                + b"\x8c" + bytes([len(arg)]) + arg.encode() + b"\x85R.")
    if how == "nested":  # the evil call hidden as the argument of an allowed one
        return (b"cnumpy\ndtype\n(c" + m + b"\n" + n + b"\n(V" + arg.encode() + b"\ntRtR.")
    raise AssertionError(a)


CALLS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
         ("subprocess", "getoutput"), ("builtins", "__import__"), ("numpy", "load"),
         ("numpy.testing._private.utils", "runstring"), ("pickle", "loads")]


@pytest.mark.parametrize("how", ["GLOBAL+REDUCE", "INST", "STACK_GLOBAL", "nested"])
@pytest.mark.parametrize("module, name", CALLS)
def test_every_callable_outside_the_allow_list_is_refused_by_every_opcode(tmp_path, module, name, how):
    marker = tmp_path / "pwned"
    arg = {"system": f"touch {marker}", "getoutput": f"touch {marker}",
           "eval": f"open({str(marker)!r}, 'w')", "exec": f"open({str(marker)!r}, 'w')"}.get(name, str(marker))
    p = tmp_path / "evil.pickle"
    p.write_bytes(opcode_pickle(module, name, arg, how))
    with pytest.raises(D.InputError, match=f"evil.pickle: cannot read pickle: refused to load {module}.{name}"):
        D.load_array(p)
    assert not marker.exists()


@pytest.mark.parametrize("payload, says", [
    # the allowed globals used for something else than an array
    (b"cnumpy\nndarray\n(I1000000\nI1000000\ntR.", "not callable"),  # an uninitialised 1e12-element array
    (b"c_codecs\nencode\n(Vx\nVrot13\ntR.", "latin-1"),
    (b"c_codecs\nencode\n(Vx\nVzlib_codec\ntR.", "latin-1"),
    (b"cnumpy._core.multiarray\n_reconstruct\n(cnumpy\ndtype\n(I0\ntVb\ntR.", "plain numpy arrays"),
    (b"cnumpy\ndtype\n(VO\ntR.", "object arrays"),
    (b"cnumpy\ndtype\n(Vf8\ntR.", "holds Float64DType, expected a numpy array"),
    (b"\x80\x05K\x01.", "holds int"),
    (b"\x80\x04\x82\x01.", "extension"),  # EXT1: the copyreg registry
    (b"P0\n.", "persistent"),
    (b"", "ends early"),
    (b"\x80\x04\x95", "ends early"),
])
def test_allowed_names_cannot_be_abused(tmp_path, payload, says):
    p = tmp_path / "odd.pickle"
    p.write_bytes(payload)
    with pytest.raises(D.InputError, match="odd.pickle") as e:
        D.load_array(p)
    assert says in str(e.value)


def test_object_arrays_are_refused_in_every_protocol(tmp_path):
    for protocol in range(6):
        for obj in (np.array([[1, "a"]], dtype=object), np.zeros(2, dtype=[("a", "f4"), ("b", "O")])):
            with pytest.raises(D.InputError, match="object arrays are not allowed|refused"):
                D.load_array(dump(tmp_path, obj, protocol=protocol))


@pytest.mark.parametrize("cut", [1, 10, 0.5, -1])
def test_truncated_pickles_are_refused(tmp_path, cut):
    raw = pickle.dumps(np.ones((600, 500), np.float32), protocol=5)  # > 1 MB: the memory-mapped path
    p = tmp_path / "cut.pickle"
    p.write_bytes(raw[: int(len(raw) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(D.InputError, match="cut.pickle: cannot read pickle"):
        D.load_array(p)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(range(6)))
def test_mutated_pickles_give_an_array_or_an_input_error(tmp_path_factory, where, byte, protocol):
    raw = bytearray(pickle.dumps(np.arange(24, dtype=np.float32).reshape(4, 6), protocol=protocol))
    raw[where % len(raw)] = byte
    p = tmp_path_factory.mktemp("mut") / "m.pickle"
    p.write_bytes(bytes(raw))
    try:
        got = D.load_array(p)
    except D.InputError:
        return
    assert isinstance(got, np.ndarray) and not got.dtype.hasobject


# --- .npy and the checks after reading ---

@pytest.mark.parametrize("arr, says", [
    (np.array([{"a": 1}], dtype=object), "Python objects"),
    (np.ones((2, 2, 2), np.float32), "3-D"),
    (np.array(5.0), "0-D"),
    (np.array([["a", "b"]]), "expected real numbers"),
    (np.ones((2, 2), dtype=np.complex64), "expected real numbers"),
    (np.ones((2, 2), dtype=bool), "expected real numbers"),
    (np.zeros(2, dtype=[("a", "f4"), ("b", "f4")]), "1-D"),
    (np.ones((0, 4), np.float32), "is empty"),
])
def test_npy_files_that_are_not_descriptor_matrices_are_refused(tmp_path, arr, says):
    p = tmp_path / "m.npy"
    np.save(p, arr, allow_pickle=True)
    with pytest.raises(D.InputError, match="m.npy") as e:
        D.check(D.load_array(p), p)
    assert says in str(e.value)


def test_npy_with_a_lying_header_is_refused(tmp_path):
    p = tmp_path / "m.npy"
    np.save(p, np.ones((10, 4), np.float32))
    raw = p.read_bytes()
    p.write_bytes(raw.replace(b"(10, 4)", b"(99, 4)"))
    with pytest.raises(D.InputError, match="m.npy: cannot read .npy"):
        D.load_array(p)


def test_size_caps(tmp_path, monkeypatch):
    p = tmp_path / "m.npy"
    np.save(p, np.ones((100, 4), np.float32))
    monkeypatch.setattr(D, "MAX_DESCRIPTOR_BYTES", 1000)
    with pytest.raises(D.InputError, match="over the .* cap"):
        D.load_array(p)
    monkeypatch.setattr(D, "MAX_DIM", 3)
    with pytest.raises(D.InputError, match="4 dims, over the 3 cap"):
        D.check(np.ones((2, 4)), p)
    csv_file = write_csv(tmp_path, "paths\n/k/raw_data/1/00012/b.jpg\n")
    monkeypatch.setattr(D, "MAX_CSV_BYTES", 10)
    with pytest.raises(D.InputError, match="images_paths.csv: is over the"):
        D.read_paths(csv_file)


def test_model_names_that_would_clash_in_the_database_are_refused(tmp_path):
    d = tmp_path / "descriptors"
    d.mkdir()
    np.save(d / "a-b.npy", np.ones((2, 2)))
    np.save(d / "a_b.npy", np.ones((2, 2)))
    with pytest.raises(D.InputError, match="a_b.npy: model name 'a_b' maps to table name 'a_b' as 'a-b' does"):
        D.discover(tmp_path)
    (d / "a_b.npy").unlink()
    np.save(d / "Consensus.npy", np.ones((2, 2)))
    with pytest.raises(D.InputError, match="reserved"):
        D.discover(tmp_path)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_vector_table_names_are_plain_identifiers(model):
    from lib import store

    name = store.vector_table(model)
    assert name.startswith("vectors_") and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    assert name == name.lower()


# --- the paths CSV ---

@pytest.mark.parametrize("content, says", [
    (b"", "is empty"),
    (b"paths\n", "has a header but no paths"),
    (b"\n\n \n", "is empty"),
    ("paths\n/k/raw_data/1/00012/caf\u00e9.jpg\n".encode("latin-1"), "is not a text CSV"),
    ("paths\n/k/raw_data/1/00012/b.jpg\n".encode("utf-16"), "is not a text CSV"),
    (b"paths\n/k/raw_data/1/00012/b.jpg\n/k/raw_data/1/00012/c\x00.jpg\n", "row 3: path '/k/raw_data/1/00012/c\\x00.jpg' has a control character"),
    (b"id,paths\n0,/k/raw_data/1/00012/b.jpg\n1\n", "row 3: missing path column"),
    (b"name,size\nfoo,3\n", "no image path"),
    (b"paths\n/k/raw_data/1/00012/b.jpg\n/etc/passwd\n", "no <folder>/<vehicle id>/<file> tail"),
    (b"paths\n/k/raw_data/1/00012/b.jpg\nC:/data/1/..\\\\x.jpg\n", "outside the image root"),
])
def test_bad_csvs_are_one_clear_error(tmp_path, content, says):
    p = tmp_path / "images_paths.csv"
    p.write_bytes(content)
    with pytest.raises(D.InputError, match="images_paths.csv") as e:
        D.read_paths(p)
    assert says in str(e.value)


def test_utf8_csv_with_bom_and_non_ascii_names_is_read(tmp_path):
    p = tmp_path / "images_paths.csv"
    p.write_bytes("\ufeffpaths\n/k/raw_data/1/00012/caf\u00e9.jpg\n".encode("utf-8"))
    assert D.read_paths(p).paths == ["1/00012/caf\u00e9.jpg"]


def test_absolute_paths_are_mapped_under_the_root_never_read_in_place(tmp_path):
    # only the <folder>/<vehicle>/<file> tail counts: /etc/... becomes <root>/etc-tail, never /etc
    il = D.read_paths(write_csv(tmp_path, "paths\n/etc/ssl/private/key.jpg\n"))
    assert il.paths == ["ssl/private/key.jpg"]
    root = tmp_path / "raw_data"
    root.mkdir()
    assert D.resolve_image(root, il.paths[0]) == str(root.resolve() / "ssl/private/key.jpg")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_any_csv_bytes_give_paths_under_the_root_or_an_input_error(tmp_path_factory, content):
    p = tmp_path_factory.mktemp("csv") / "images_paths.csv"
    p.write_bytes(content)
    try:
        il = D.read_paths(p)
    except D.InputError:
        return
    for rel in il.paths:
        parts = rel.split("/")
        assert len(parts) == 3 and not {".", ".."} & set(parts) and all(parts)
