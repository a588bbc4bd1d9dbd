"""`python -m lib load --k-min A --k-max B`: every range a user can type runs or is refused in one line."""
import os

import pytest

from lib import algorithms, krange, store
from lib.descriptors import InputError
from lib.queries import Explorer

from .test_pipeline import run_cli
from .tiny import make_tiny

ROWS = 300  # make_tiny's images


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("krange") / "data", n=ROWS)


def test_thinning_keeps_both_ends_of_the_range():
    assert algorithms.coarse((14,)) == [14]
    assert algorithms.coarse(range(11, 15)) == [11, 14]
    assert algorithms.coarse(range(2, 31)) == list(range(2, 11)) + [15, 20, 25, 30]
    assert algorithms.coarse(range(12, 23)) == [12, 15, 20, 22]


def test_range_check_as_a_library_function():
    assert krange.check_range(4, 4) == (4,)
    assert krange.check_range(2, 5, n_rows=6) == (2, 3, 4, 5)
    assert krange.check_ks([14]) == (14,)
    for args, says in [((9, 3), "--k-min 9 is greater than --k-max 3"), ((1, 4), "at least 2"),
                       ((0, 0), "at least 2"), ((2, 6, 6), "below the number of images (6")]:
        with pytest.raises(InputError) as e:
            krange.check_range(*args)
        assert e.value.path == "--k-min/--k-max" and says in e.value.problem
    with pytest.raises(InputError, match="no k to sweep"):
        krange.check_ks(())


def loaded(tmp_path, data, *args):
    db = tmp_path / "v.duckdb"
    r = run_cli("load", str(data), "--db", str(db), "--map-iters", "50", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return db


def test_a_single_k_runs_with_every_algorithm(tmp_path, data):
    # minibatch and gmm thin their sweep (lib.algorithms.coarse); a lone k must survive it
    db = loaded(tmp_path, data, "--k-min", "4", "--k-max", "4")
    ex = Explorer(db)
    try:
        # a range of one k is the user's choice: that k, never widened
        assert (ex.models()["chosen_k"] == 4).all() and sorted(ex.models()["model"]) == ["alpha", "beta"]
        assert ex.models()["k_note"].str.contains("was given").all()
        runs = ex.algorithm_runs()
        assert set(runs["algorithm"]) == set(algorithms.ALGORITHMS)
        for r in runs[runs.algorithm != "hdbscan"].itertuples():  # hdbscan has no k
            values = list(ex.algorithm_sweep(r.model, r.algorithm)["value"])
            assert values == [4] and r.k == 4, (r.model, r.algorithm, values, r.k)
    finally:
        ex.close()


def test_a_range_above_ten_sweeps_both_ends(tmp_path, data):
    db = loaded(tmp_path, data, "--k-min", "11", "--k-max", "14", "--algorithms", "kmeans,minibatch,gmm")
    ex = Explorer(db)
    try:
        assert (ex.models()["chosen_k"] >= 11).all()
        for model in ("alpha", "beta"):
            assert list(ex.algorithm_sweep(model, "kmeans")["value"])[:4] == [11, 12, 13, 14]
            for algo in ("minibatch", "gmm"):  # thinned (coarse), both ends kept
                assert list(ex.algorithm_sweep(model, algo)["value"])[:2] == [11, 14]
    finally:
        ex.close()


@pytest.mark.parametrize("k_min, k_max, says", [
    ("9", "3", "--k-min 9 is greater than --k-max 3"),
    ("1", "4", "k must be at least 2 (got 1..4)"),
    ("2", str(ROWS), f"k must be below the number of images ({ROWS} in images_paths.csv); got --k-max {ROWS}"),
    (str(ROWS + 5), str(ROWS + 10),
     f"k must be below the number of images ({ROWS} in images_paths.csv); got --k-max {ROWS + 10}"),
])
def test_a_bad_range_is_one_line_and_writes_nothing(tmp_path, data, k_min, k_max, says):
    # a descriptor file that cannot be read: the range is refused before any descriptor is read
    broken = tmp_path / "data"
    os.symlink(data / "raw_data", tmp_path / "raw_data")
    (broken / "descriptors").mkdir(parents=True)
    (broken / "descriptors" / "alpha.pickle").write_bytes(b"\x80\x04garbage")
    (broken / "images_paths.csv").write_bytes((data / "images_paths.csv").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    db = out / "v.duckdb"
    r = run_cli("load", str(broken), "--db", str(db), "--k-min", k_min, "--k-max", k_max)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr == f"error: --k-min/--k-max: {says}\n"  # one line, no traceback
    assert r.stdout == ""
    assert list(out.iterdir()) == []  # no database, no builds folder
    assert not os.path.lexists(db) and not store.builds_dir(db).exists()


def test_an_inverted_range_is_refused_before_the_folder_is_read(tmp_path):
    db = tmp_path / "v.duckdb"
    r = run_cli("load", str(tmp_path / "no-such-folder"), "--db", str(db), "--k-min", "9", "--k-max", "3")
    assert (r.returncode, r.stderr) == (2, "error: --k-min/--k-max: --k-min 9 is greater than --k-max 3\n")
    assert list(tmp_path.iterdir()) == []


def test_a_load_config_built_in_code_is_checked_too(tmp_path, data):
    from lib import pipeline

    db = tmp_path / "v.duckdb"
    with pytest.raises(InputError) as e:
        pipeline.load(data, db, pipeline.LoadConfig(ks=(1, 2, 3)))
    assert e.value.path == "--k-min/--k-max" and "at least 2" in e.value.problem
    assert not db.exists() and not store.builds_dir(db).exists()
