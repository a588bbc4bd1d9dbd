"""Tests for lib/demo.py: layout, determinism, planted structure, pictures."""

import csv
import hashlib
import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import demo  # noqa: E402

from .conftest import demo_seed  # noqa: E402  (DEMO_SEED moves every seed here)

PATH_RE = re.compile(
    r"^/kaggle/input/intellivision-case/raw_data/(\d{1,2})/(\d{5})/(\d{6})_c(\d{3})_(\d{5})\.jpg$"
)
TRUTH_COLS = ["image_id", "vehicle_id", "type", "color", "view", "camera", "is_outlier",
              "outlier_kind"]


# ---------------------------------------------------------------- helpers


def _read_truth(d):
    with open(Path(d) / "truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


def _read_paths(d):
    lines = (Path(d) / "images_paths.csv").read_text().splitlines()
    return lines[0], lines[1:]


def _load(d, name):
    with open(Path(d) / "descriptors" / f"{name}.pickle", "rb") as f:
        return pickle.load(f)


def _knn(X, k=10):
    """Exact k nearest neighbours (excluding self): (mean distance, indices)."""
    X = X.astype(np.float64)
    sq = (X ** 2).sum(1)
    D = sq[:, None] + sq[None] - 2 * X @ X.T
    np.fill_diagonal(D, np.inf)
    idx = np.argpartition(D, k, axis=1)[:, :k]
    dist = np.sqrt(np.maximum(np.take_along_axis(D, idx, 1), 0))
    return dist.mean(1), idx


def _check_layout(d, summary):
    d = Path(d)
    header, paths = _read_paths(d)
    assert header == "paths"
    n = len(paths)
    assert n == summary["n_images"]
    for name, dim in demo.MODEL_DIMS.items():
        p = d / "descriptors" / f"{name}.pickle"
        assert p.is_file(), p
        arr = _load(d, name)
        assert isinstance(arr, np.ndarray)
        assert arr.dtype == np.float32
        assert arr.shape == (n, dim)
        assert np.isfinite(arr).all()
        # Realistic magnitudes: roughly unit scale per dimension.
        assert 0.3 < float(arr.std()) < 3.0
    assert sorted(os.listdir(d / "descriptors")) == sorted(
        f"{m}.pickle" for m in demo.MODEL_DIMS)

    truth = _read_truth(d)
    assert list(truth[0].keys())[: len(TRUTH_COLS)] == TRUTH_COLS
    assert len(truth) == n
    vid_folder = {}
    for i, (p, t) in enumerate(zip(paths, truth)):
        m = PATH_RE.match(p)
        assert m, p
        folder, vid5, vid6, cam, _ = m.groups()
        assert 1 <= int(folder) <= 10
        assert int(vid5) == int(vid6) == int(t["vehicle_id"])
        assert int(cam) == int(t["camera"])
        assert int(t["image_id"]) == i
        assert t["is_outlier"] in ("0", "1")
        assert (t["outlier_kind"] != "") == (t["is_outlier"] == "1")
        assert t["type"] in demo.TYPES and t["color"] in demo.COLORS
        assert t["view"] in demo.VIEWS
        # One folder per vehicle: a vehicle never appears under two folders.
        assert vid_folder.setdefault(vid5, folder) == folder
        assert (d / "raw_data").joinpath(*p.split("/")[-3:]).is_file(), p
    assert len(set(paths)) == n

    # Planted outliers: ~1 %, all four kinds present.
    is_out = np.array([t["is_outlier"] == "1" for t in truth])
    assert 1 <= is_out.sum() <= 0.03 * n
    assert abs(is_out.mean() - 0.01) < 0.005
    assert {t["outlier_kind"] for t in truth if t["is_outlier"] == "1"} == set(demo.OUTLIER_KINDS)

    # Rows are shuffled: consecutive rows usually belong to different vehicles.
    vids = [t["vehicle_id"] for t in truth]
    changes = sum(a != b for a, b in zip(vids, vids[1:]))
    assert changes > 0.8 * (n - 1)
    return truth


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo_small")
    calls = []
    summary = demo.generate(d, n_vehicles=150, seed=demo_seed(0), progress=lambda a, b: calls.append((a, b)))
    return d, summary, calls


@pytest.fixture(scope="module")
def small_arrays(small):
    d, _, _ = small
    truth = _read_truth(d)
    arrays = {name: _load(d, name) for name in demo.MODEL_DIMS}
    return truth, arrays


# ---------------------------------------------------------------- layout


def test_layout(small):
    d, summary, _ = small
    truth = _check_layout(d, summary)
    assert summary["n_vehicles"] == 150
    assert summary["n_outliers"] == sum(t["is_outlier"] == "1" for t in truth)
    assert summary["n_pictures_rendered"] == summary["n_images"]
    assert set(summary["paths"]["descriptors"]) == set(demo.MODEL_DIMS)


def test_photos_per_vehicle(small):
    d, _, _ = small
    truth = _read_truth(d)
    counts = {}
    for t in truth:
        counts[t["vehicle_id"]] = counts.get(t["vehicle_id"], 0) + 1
    c = np.array(list(counts.values()))
    assert len(c) == 150
    assert c.min() >= 4 and c.max() <= 16
    assert 9.2 < c.mean() < 11.2
    # A vehicle is seen by more than one camera and from more than one view.
    by_vehicle = {}
    for t in truth:
        by_vehicle.setdefault(t["vehicle_id"], []).append((t["camera"], t["view"], t["type"],
                                                           t["color"]))
    multi_cam = np.mean([len({x[0] for x in v}) > 1 for v in by_vehicle.values()])
    multi_view = np.mean([len({x[1] for x in v}) > 1 for v in by_vehicle.values()])
    assert multi_cam > 0.9 and multi_view > 0.7
    # Type and colour are fixed per vehicle.
    assert all(len({(x[2], x[3]) for x in v}) == 1 for v in by_vehicle.values())


def test_progress_callback(small):
    _, summary, calls = small
    assert calls, "progress was never called"
    done = [a for a, _ in calls]
    assert done == sorted(done)
    assert calls[-1] == (summary["n_images"], summary["n_images"])
    assert all(b == summary["n_images"] for _, b in calls)


def test_jpegs_are_pictures(small):
    d, _, _ = small
    _, paths = _read_paths(d)
    for p in paths[:20]:
        with Image.open(Path(d, "raw_data", *p.split("/")[-3:])) as im:
            assert im.format == "JPEG"
            assert im.size == (192, 144)


# ---------------------------------------------------------------- pickles


@pytest.mark.parametrize("arr", [
    np.zeros((0, 3), np.float32),
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.random.default_rng(0).standard_normal((40, 50)).astype(np.float32),  # 8 kB
    np.random.default_rng(1).standard_normal((300, 128)).astype(np.float32),  # > 64 kB frame
    np.arange(10, dtype=np.int64),
    np.ones((5, 2), np.float64),
])
def test_write_pickle_matches_pickle_dump(tmp_path, arr):
    p = tmp_path / "a.pickle"
    demo.write_pickle(arr, p)
    assert p.read_bytes() == pickle.dumps(arr, protocol=4)
    with open(p, "rb") as f:
        back = pickle.load(f)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


# ---------------------------------------------------------------- determinism


def test_deterministic(tmp_path):
    a = demo.generate(tmp_path / "a", n_vehicles=30, seed=demo_seed(7))
    b = demo.generate(tmp_path / "b", n_vehicles=30, seed=demo_seed(7))
    c = demo.generate(tmp_path / "c", n_vehicles=30, seed=demo_seed(8))
    for name in demo.MODEL_DIMS:
        pa, pb, pc = (Path(x["paths"]["descriptors"][name]) for x in (a, b, c))
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    for f in ("images_paths.csv", "truth.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    _, paths = _read_paths(tmp_path / "a")
    for p in paths[:10]:
        rel = p.split("/")[-3:]
        assert (tmp_path / "a" / "raw_data").joinpath(*rel).read_bytes() == \
            (tmp_path / "b" / "raw_data").joinpath(*rel).read_bytes()


def test_regenerate_in_place(tmp_path):
    # Writing over an earlier run whose pictures were hard links of each other (as the old
    # pooled demo wrote them) must replace each file, not write through the link.
    demo.generate(tmp_path / "x", n_vehicles=30, seed=demo_seed(1))
    files = sorted((tmp_path / "x" / "raw_data").rglob("*.jpg"))
    for f in files[1:]:
        f.unlink()
        os.link(files[0], f)
    s = demo.generate(tmp_path / "x", n_vehicles=30, seed=demo_seed(1))
    demo.generate(tmp_path / "y", n_vehicles=30, seed=demo_seed(1))
    _, paths = _read_paths(tmp_path / "x")
    assert len(paths) == s["n_images"]
    for p in paths:
        rel = p.split("/")[-3:]
        assert (tmp_path / "x" / "raw_data").joinpath(*rel).read_bytes() == \
            (tmp_path / "y" / "raw_data").joinpath(*rel).read_bytes()


# ---------------------------------------------------------------- planted structure


def _normal(truth):
    return np.array([t["is_outlier"] == "0" for t in truth])


def test_vdc_color_recovers_colour(small_arrays):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    truth, arrays = small_arrays
    n = _normal(truth)
    colour = np.array([t["color"] for t in truth])[n]
    k = len(set(colour))
    labels = KMeans(k, random_state=0, n_init=10).fit_predict(arrays["vdc_color"][n])
    assert normalized_mutual_info_score(colour, labels) >= 0.8


def test_vdc_type_recovers_type(small_arrays):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    truth, arrays = small_arrays
    n = _normal(truth)
    typ = np.array([t["type"] for t in truth])[n]
    k = len(set(typ))
    labels = KMeans(k, random_state=0, n_init=10).fit_predict(arrays["vdc_type"][n])
    assert normalized_mutual_info_score(typ, labels) >= 0.7


def test_osnet_neighbours_are_same_vehicle(small_arrays):
    truth, arrays = small_arrays
    n = _normal(truth)
    vid = np.array([t["vehicle_id"] for t in truth])
    _, idx = _knn(arrays["osnet"])
    share = (vid[idx] == vid[:, None]).mean(1)[n].mean()
    assert share > 0.5
    # The colour head knows nothing about identity: much lower share there.
    _, idx_c = _knn(arrays["vdc_color"])
    assert (vid[idx_c] == vid[:, None]).mean(1)[n].mean() < share - 0.2


def test_outliers_are_off_cluster(small_arrays):
    truth, arrays = small_arrays
    out = ~_normal(truth)
    hit = {}
    for name in ("vdc_color", "vdc_type"):
        md, _ = _knn(arrays[name])
        hit[name] = (md[out] >= np.quantile(md, 0.98)).mean()
    assert max(hit.values()) >= 0.8, hit
    # Not merely larger norms: outliers have typical vector lengths.
    for name, arr in arrays.items():
        norms = np.linalg.norm(arr, axis=1)
        ratio = norms[out].mean() / norms[~out].mean()
        assert 0.8 < ratio < 1.25, (name, ratio)


# ---------------------------------------------------------------- pictures


def _picture(d, truth_row):
    with Image.open(Path(d, "raw_data", truth_row["rel_path"])) as im:
        return np.asarray(im.convert("RGB"), float)


def test_outlier_pictures_look_like_their_kind(small):
    d, _, _ = small
    truth = _read_truth(d)
    by_kind = {}
    for t in truth:
        by_kind.setdefault(t["outlier_kind"] or "normal", []).append(t)
    normal = by_kind["normal"][:400]
    normal_pics = [_picture(d, t) for t in normal]

    # night: far darker than ordinary photos (headlight glare aside).
    bright_normal = np.array([a.mean() for a in normal_pics])
    bright_night = np.array([_picture(d, t).mean() for t in by_kind["night"]])
    assert bright_night.max() < np.percentile(bright_normal, 5)
    assert np.median(bright_night) < 0.4 * np.median(bright_normal)

    # empty_road: the centre has the colour of the road at the bottom edge
    # (no vehicle in it); few ordinary photos look like that.
    def road_share(a):
        h, w, _ = a.shape
        centre = a[int(0.45 * h):int(0.8 * h), int(0.25 * w):int(0.75 * w)]
        road = np.median(a[int(0.92 * h):].reshape(-1, 3), axis=0)
        return (np.abs(centre - road).max(axis=2) < 25).mean()

    assert min(road_share(_picture(d, t)) for t in by_kind["empty_road"]) > 0.8
    assert np.mean([road_share(a) > 0.8 for a in normal_pics]) < 0.1
    assert np.median([road_share(a) for a in normal_pics]) < 0.3

    # occlusion: foliage covers a large part of the picture.
    def leafy(a):
        return ((a[..., 1] > a[..., 0] + 15) & (a[..., 1] > a[..., 2] + 15)).mean()

    assert min(leafy(_picture(d, t)) for t in by_kind["occlusion"]) > 0.4
    assert np.median([leafy(a) for a in normal_pics]) < 0.05

    # wrong_crop: different from an ordinary framing of the same vehicle.
    for t in by_kind["wrong_crop"]:
        a = _picture(d, t)
        same = [_picture(d, u) for u in by_kind["normal"]
                if u["vehicle_id"] == t["vehicle_id"] and u["camera"] == t["camera"]
                and u["view"] == t["view"]]
        for b in same:
            assert np.abs(a - b).mean() > 10


# ---------------------------------------------------------------- one vehicle per picture


def _pictures(d):
    """Per vehicle: (inode, bytes) of every picture file."""
    with open(d / "truth.csv", newline="") as f:
        truth = list(csv.DictReader(f))
    by = {}
    for t in truth:
        p = d / "raw_data" / t["rel_path"]
        by.setdefault(t["vehicle_id"], []).append((os.stat(p).st_ino, p.read_bytes()))
    return truth, by


def test_no_picture_is_shared_between_vehicles(tmp_path, monkeypatch):
    """Drawn by two processes (as above 20,000 images): every file its own, byte-identical to one process."""
    monkeypatch.setattr(demo, "_PARALLEL_ROWS", 0)
    s = demo.generate(tmp_path / "two", n_vehicles=60, seed=demo_seed(2), n_jobs=2)
    assert s["n_pictures_rendered"] == s["n_images"]
    truth, by = _pictures(tmp_path / "two")
    owner_of_inode, owner_of_bytes = {}, {}
    for vid, pics in by.items():
        for ino, data in pics:
            assert owner_of_inode.setdefault(ino, vid) == vid, "one file for two vehicles"
            assert owner_of_bytes.setdefault(hashlib.sha1(data).digest(), vid) == vid, \
                "identical pictures of two vehicles"
    assert len(owner_of_inode) == len(truth)
    monkeypatch.setattr(demo, "_PARALLEL_ROWS", 10 ** 9)
    demo.generate(tmp_path / "one", n_vehicles=60, seed=demo_seed(2), n_jobs=1)
    for f in ("truth.csv", "images_paths.csv", "descriptors/osnet.pickle"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()
    assert _pictures(tmp_path / "one")[1].keys() == by.keys()
    for vid, pics in _pictures(tmp_path / "one")[1].items():
        assert [b for _, b in pics] == [b for _, b in by[vid]]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.generate(tmp_path, n_vehicles=0)
    with pytest.raises(ValueError):
        demo.generate(tmp_path, n_vehicles=10, n_cameras=500)
