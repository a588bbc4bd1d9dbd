"""The first start: a first look published at once, the full load in a background process."""
import json
import os
import sys
import time

import duckdb
import pytest

from lib import __main__ as cli
from lib import firststart, neighbors, store

from .tiny import make_tiny


def _wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.5)


def _algorithms(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT DISTINCT algorithm FROM algorithm_runs").fetchall()}


def test_first_look_then_the_full_load_lands_in_the_background(tmp_path):
    data = make_tiny(tmp_path / "data", n=400)
    db = tmp_path / "v.duckdb"
    assert firststart.first_start(data, db) == "built"
    first = store.resolve(db)
    assert _algorithms(first) == {"kmeans"}  # the first look, already published
    status = firststart.background_status(db)
    assert status is not None and status["running"]
    assert "Still computing in the background" in firststart.describe(status)
    # the background load publishes a build with every algorithm, then removes its status file
    _wait(lambda: firststart.background_status(db) is None, 400, "end of the background load")
    assert store.resolve(db) != first
    assert _algorithms(store.resolve(db)) == {"kmeans", "minibatch", "gmm", "birch", "ward", "hdbscan"}
    with duckdb.connect(str(store.resolve(db)), read_only=True) as con:  # the first look's work, not redone
        stages = set(con.execute("SELECT stage || ' ' || model FROM stages").fetchall())
    assert {("k sweep (reused) alpha",), ("2-D map (reused) alpha",), ("2-D map (reused) beta",)} <= stages
    assert "built" in firststart.log_path(db).read_text()
    assert firststart.first_start(data, db) == "ready"  # nothing left to do


def test_a_failed_load_leaves_its_reason_and_first_start_resumes_it(tmp_path, monkeypatch, capsys):
    data = make_tiny(tmp_path / "data", n=200)
    (data / "descriptors" / "beta.pickle").write_bytes(b"not a pickle")
    db, status_file = tmp_path / "v.duckdb", tmp_path / "v.duckdb.loading.json"
    assert cli.main(["load", str(data), "--db", str(db), "--status", str(status_file)]) == 2
    assert "beta.pickle" in capsys.readouterr().err
    status = firststart.background_status(db)
    assert not status["running"] and "beta.pickle" in status["failed"]
    text = firststart.describe(status)
    assert "stopped before it finished" in text and "beta.pickle" in text
    assert not db.exists() and not list(tmp_path.glob("v.duckdb.builds/*.duckdb"))  # nothing half-written

    # with a database in place, first_start starts a stopped full load again and leaves a good one alone
    store.builds_dir(db).mkdir(exist_ok=True)
    build = store.builds_dir(db) / "v-first-look.duckdb"
    duckdb.connect(str(build)).close()
    store.publish(db, build)
    started = []
    monkeypatch.setattr(firststart, "start_full_load", lambda d, p: started.append(p))
    assert firststart.first_start(data, db) == "resumed" and started == [db]
    status_file.unlink()
    assert firststart.first_start(data, db) == "ready" and started == [db]


def test_status_of_a_dead_process_is_not_running(tmp_path):
    db = tmp_path / "v.duckdb"
    firststart.status_path(db).write_text(json.dumps({"pid": 2**22 + 12345, "started": 100.0, "stage": "PCA"}))
    status = firststart.background_status(db)
    assert status is not None and not status["running"]
    assert "its process is gone" in firststart.describe(status, now=200.0)
    firststart.status_path(db).write_text(json.dumps({"pid": os.getpid(), "started": 100.0, "stage": "k sweep",
                                                      "model": "osnet"}))
    running = firststart.describe(firststart.background_status(db), now=225.0)
    assert "now: k sweep of osnet; started 2 min 05 s ago" in running


def test_small_sets_get_exact_neighbours_without_compiling_pynndescent(tmp_path):
    # the first start's largest fixed cost was pynndescent's numba compilation; below the cut-off the
    # exact search answers, and pynndescent is never imported
    code = ("import sys, numpy as np; from lib import neighbors; "
            "Z = np.random.default_rng(0).normal(size=(6000, 48)).astype(np.float32); "
            "i, d = neighbors.build_knn(Z, 10); e, _ = neighbors.exact_knn(Z, Z, 10, exclude_self=True); "
            "assert (i == e).all(); assert 'pynndescent' not in sys.modules; print('ok')")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(neighbors.__file__))))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_two_first_starts_at_once_build_once(tmp_path, monkeypatch):
    # two visitors of a newly started hosted app: the second waits for the first's build and uses it
    import threading

    from lib import pipeline

    from .tiny import TINY_CONFIG

    data = make_tiny(tmp_path / "data", n=200)
    db = tmp_path / "v.duckdb"
    real_load, loads = pipeline.load, []

    def counted(d, path, config=None, progress=None):
        loads.append(path)
        return real_load(d, path, TINY_CONFIG, progress)

    monkeypatch.setattr(pipeline, "load", counted)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(firststart.first_start(data, db, background=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(answers) == ["built", "ready"] and loads == [db]
