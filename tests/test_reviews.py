"""Verdicts and cluster names: concurrent writers, rebuilds of the main database, carrying names over."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from lib import batches, reviews, store
from lib.assign import assign
from lib.queries import Explorer

from .tiny import load_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITER = """
import sys
from lib.reviews import Reviews
r = Reviews(sys.argv[1])
for i in range(int(sys.argv[3])):
    r.set_verdict(f"{sys.argv[2]}/{i:05d}.jpg", ("outlier", "fine", "unsure")[i % 3], f"note {i}", image_id=i)
"""


def test_verdicts_are_saved_replaced_and_kept_in_history(tmp_path):
    r = reviews.Reviews(tmp_path / "r.sqlite")
    r.set_verdict("1/00001/a.jpg", "outlier", " night ", image_id=3, build="b1")
    r.set_verdict("1/00001/a.jpg", "fine", "", image_id=3, build="b1")
    assert r.verdicts(["1/00001/a.jpg", "nope.jpg"]) == {"1/00001/a.jpg": ("fine", "")}
    r.set_verdict("1/00001/a.jpg", None, "")  # cleared
    assert r.verdicts() == {}
    with pytest.raises(ValueError, match="verdict must be one of"):
        r.set_verdict("x.jpg", "maybe")
    history = r._read("SELECT verdict, note FROM verdict_history ORDER BY rowid")
    assert history == [("outlier", "night"), ("fine", ""), (None, "")]


def test_two_threads_and_two_processes_write_at_once(tmp_path):
    path = tmp_path / "r.sqlite"
    r = reviews.Reviews(path)
    n = 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"proc{p}", str(n)], cwd=ROOT)
             for p in range(2)]

    def write(tag):
        for i in range(n):
            r.set_verdict(f"{tag}/{i:05d}.jpg", "unsure", "", image_id=i)

    threads = [threading.Thread(target=write, args=(f"thread{t}",)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(120) for p in procs] == [0, 0]
    got = r.verdicts()
    assert len(got) == 4 * n
    for tag in ("proc0", "proc1", "thread0", "thread1"):
        assert sum(p.startswith(tag + "/") for p in got) == n
    assert got["proc1/00004.jpg"] == ("fine", "note 4")
    assert r._read("PRAGMA journal_mode")[0][0] == "wal"


def test_carry_names_by_member_overlap():
    # old build: cluster 0 = a..j, cluster 1 = k..t; new build renumbers them and splits the second
    old = [{"build": "old", "cluster": 0, "name": "vans", "size": 10, "signature": list("abcdefghij"),
            "updated_at": "1"},
           {"build": "old", "cluster": 1, "name": "sedans", "size": 10, "signature": list("klmnopqrst"),
            "updated_at": "2"}]
    new = {**{c: 5 for c in "abcdefghij"}, **{c: 7 for c in "klmno"}, **{c: 8 for c in "pqrst"}}
    names, orphans = reviews.carry_names(old, "new", lambda paths: {p: new[p] for p in paths if p in new},
                                         {5: 11, 7: 5, 8: 5})
    assert names == {5: {"name": "vans", "build": "old", "jaccard": pytest.approx(10 / 11)}}
    assert [o["name"] for o in orphans] == ["sedans"] and orphans[0]["jaccard"] == pytest.approx(0.5)
    # a name given in the current build wins over a carried one
    own = old + [{"build": "new", "cluster": 5, "name": "white vans", "size": 11, "signature": [],
                  "updated_at": "3"}]
    names, _ = reviews.carry_names(own, "new", lambda paths: {p: new[p] for p in paths}, {5: 11, 7: 5, 8: 5})
    assert names[5] == {"name": "white vans", "build": "new", "jaccard": None}


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    return load_tiny(tmp_path_factory.mktemp("rebuild"))


def test_rebuild_keeps_verdicts_names_and_batches(tiny_db):
    """Verdicts written while the loader rebuilds (another process) all survive; names and batches too."""
    data, db = tiny_db
    rev = reviews.Reviews(reviews.default_path(db))
    ex = Explorer(db)
    old_build = ex.build
    clusters = ex.df("SELECT image_id, cluster FROM assignments WHERE model = 'alpha' ORDER BY image_id")
    reviews.name_cluster(ex, rev, "alpha", 2, "second")
    members = set(ex.df("""SELECT path FROM images JOIN assignments USING (image_id)
                           WHERE model = 'alpha' AND cluster = 2""")["path"])
    paths = ex.paths(range(ex.n_images))
    ex.close()
    assign(data, db, name="first-batch")

    # a rebuild with another seed (cluster numbers may change) in its own process, as `python -m lib load`
    proc = subprocess.Popen([sys.executable, "-m", "lib", "load", str(data), "--db", str(db), "--k-min", "2",
                             "--k-max", "5", "--map-iters", "50", "--seed", "1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    written = 0
    while proc.poll() is None or written < 20:
        i = written % len(paths)
        rev.set_verdict(paths[i], "outlier" if written % 2 else "fine", f"w{written}", image_id=i)
        written += 1
        time.sleep(0.01)
    assert proc.wait() == 0, proc.stderr.read()[-2000:]
    store.prune(db, keep=1)  # even with every older build deleted

    ex = Explorer(db)
    try:
        assert ex.build != old_build
        got = rev.verdicts()
        last = {}
        for w in range(written):  # the last write to each path is what must be there
            last[paths[w % len(paths)]] = ("outlier" if w % 2 else "fine", f"w{w}")
        assert got == last
        # the same path is the same image in the new build
        assert ex.paths([0])[0] == paths[0]
        # the name follows its members into the new build's numbering
        names, orphans = reviews.current_names(ex, rev, "alpha")
        (carried,) = [c for c, v in names.items() if v["name"] == "second"]
        new_members = set(ex.df("""SELECT path FROM images JOIN assignments USING (image_id)
                                   WHERE model = 'alpha' AND cluster = ?""", [carried])["path"])
        assert len(members & new_members) / len(members | new_members) >= reviews.CARRY_JACCARD
        assert names[carried]["build"] == old_build and not orphans
    finally:
        ex.close()
    assert batches.list_batches(db) == ["first-batch"]
    b = batches.Batch(db, "first-batch")
    assert b.meta["build"] == old_build and b.n_images == len(clusters)
    b.close()
