"""`python -m lib assign`: new images placed in an existing build's clusters, stored as a batch."""
import dataclasses
import os
import pickle
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from lib import batches, descriptors, images, neighbors, pipeline, projection, store
from lib.assign import assign
from lib.queries import Explorer

from .conftest import demo_seed
from .tiny import TINY_CONFIG, load_tiny, make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELD_SHARE = 0.1
COMPARED = ("vdc_color", "vdc_type")  # the models with planted cluster structure


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lib", *args], cwd=ROOT, capture_output=True, text=True)


def split_by_vehicle(src, train_dir, held_dir, share=HELD_SHARE, seed=0):
    """Two folders in the dataset layout: the vehicles held back, and the rest. Returns the held rows."""
    src = os.fspath(src)
    lines = open(os.path.join(src, descriptors.PATHS_CSV)).read().splitlines()
    header, rows = lines[0], lines[1:]
    vehicles = np.array(descriptors.read_paths(os.path.join(src, descriptors.PATHS_CSV)).vehicle_ids)
    uniq = np.unique(vehicles)
    held_v = np.random.default_rng(seed).choice(uniq, int(round(share * len(uniq))), replace=False)
    held = np.isin(vehicles, held_v)
    for out, sel in ((train_dir, ~held), (held_dir, held)):
        (out / "descriptors").mkdir(parents=True)
        for model, path in descriptors.discover(src).items():
            X = np.ascontiguousarray(descriptors.load_array(path)[sel])
            (out / "descriptors" / path.name).write_bytes(pickle.dumps(X, protocol=4))
        (out / descriptors.PATHS_CSV).write_text("\n".join([header] + [r for r, s in zip(rows, sel) if s]) + "\n")
        os.symlink(os.path.join(src, descriptors.IMAGE_ROOT), out / descriptors.IMAGE_ROOT)
    return np.flatnonzero(held)


def labels_by_path(con, model):
    return dict(con.execute("""SELECT i.path, a.cluster FROM images i JOIN assignments a USING (image_id)
                               WHERE a.model = ?""", [model]).fetchall())


def test_held_back_vehicles_get_the_clusters_of_a_full_load(demo_dir, demo_db, tmp_path):
    """Load the demo without 10% of its vehicles, assign those, compare with the full load.

    The training load is told the k the full load chose (k is the loader's choice, not assign's, and
    with another k no assignment could agree). Cluster numbers of two loads are arbitrary, so the
    training load's clusters are matched to the full load's by the Hungarian method on their
    contingency table over the images both loads saw.
    """
    held_rows = split_by_vehicle(demo_dir, tmp_path / "train", tmp_path / "held", seed=demo_seed(0))
    full = store.connect(demo_db[0])
    chosen = dict(full.execute("SELECT model, chosen_k FROM models").fetchall())
    by_k, results = {}, {}
    for m in COMPARED:
        by_k.setdefault(chosen[m], []).append(m)
    try:
        for k, models in by_k.items():
            db = tmp_path / f"train-k{k}.duckdb"
            # KMeans only and no combination: assign places images by the default clustering (a loaded
            # combination has its own test below)
            cfg = pipeline.LoadConfig(ks=(k,), map_iters=100, map_exaggeration_iters=100, models=tuple(models),
                                      algorithms=("kmeans",), combinations=())
            loaded = pipeline.load(tmp_path / "train", db, cfg)
            assert {m: loaded["models"][m]["chosen_k"] for m in models} == {m: k for m in models}
            report = assign(tmp_path / "held", db, name="held")
            assert report["images"] == len(held_rows)
            # the held folder's other models are not in this database: left alone
            assert set(report["ignored"]) == set(descriptors.discover(tmp_path / "held")) - set(models)
            train, batch = store.connect(db), batches.Batch(db, "held")
            try:
                for model in models:
                    results[model] = _compare(model, full, train, batch, tmp_path / "held")
            finally:
                batch.close()
                train.close()
    finally:
        full.close()
    assert set(results) == set(COMPARED)
    for model, (loads_agree, agreement, knn_agreement, novel) in results.items():
        # the two loads cluster the images both saw alike, far above chance (else the check below would measure
        # nothing); how alike depends on the k this machine chose: a k above or below the planted kinds splits
        # or merges some of them, and which differs between two loads (vdc_type: 0.95 at k = 17 by the old
        # vote, 0.80 with issue 14's gap statistic)
        assert loads_agree >= 0.6, (model, loads_agree)
        # the check: the held-back images get the full load's clusters for >= 95%, or, where the two
        # loads themselves agree on less, about as often as the images both loads saw
        assert agreement >= min(0.95, loads_agree - 0.05), (model, agreement, loads_agree)
        assert knn_agreement >= 0.9, (model, knn_agreement)
        assert novel <= 0.1, (model, novel)  # new vehicles of known kinds: few beyond the 99% radius


def _compare(model, full, train, batch, held_dir):
    full_of, train_of = labels_by_path(full, model), labels_by_path(train, model)
    seen = list(train_of)
    a = np.array([train_of[p] for p in seen])
    b = np.array([full_of[p] for p in seen])
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    rows, cols = linear_sum_assignment(-table)
    to_full = dict(zip(rows, cols))
    loads_agree = table[rows, cols].sum() / len(seen)
    got = batch.images(model, limit=10**9).sort_values("image_id")
    X = np.asarray(descriptors.load_array(descriptors.discover(held_dir)[model]), dtype=np.float32)
    assert len(got) == len(X)
    agreement = float(np.mean([to_full.get(c) == full_of[p] for p, c in zip(got["path"], got["cluster"])]))
    # independent of a second load: the cluster most of the 10 nearest training images have
    Z = projection.stored_vectors(train, model)
    new = projection.reduce(train, model, {model: X})
    idx, _ = neighbors.exact_knn(Z, new, 10)
    majority = np.array([np.bincount(a_row).argmax() for a_row in np.array(
        train.execute("SELECT cluster FROM assignments WHERE model = ? ORDER BY image_id", [model])
        .fetchnumpy()["cluster"])[idx]])
    knn_agreement = float((majority == got["cluster"].to_numpy()).mean())
    print(f"{model}: two loads agree on {loads_agree:.3f} of the training images; held-back: {agreement:.3f} "
          f"as the full load, {knn_agreement:.3f} as their 10 nearest training images, novel {got['novel'].mean():.3f}")
    return loads_agree, agreement, knn_agreement, float(got["novel"].mean())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_tiny(tmp_path_factory.mktemp("assign"))


def copy_dataset(src, dst, change=None):
    """A copy of a dataset folder; ``change(model, X) -> X or None`` edits or drops descriptor files."""
    (dst / "descriptors").mkdir(parents=True)
    shutil.copy(src / descriptors.PATHS_CSV, dst / descriptors.PATHS_CSV)
    os.symlink(src / descriptors.IMAGE_ROOT, dst / descriptors.IMAGE_ROOT)
    for model, path in descriptors.discover(src).items():
        X = np.array(descriptors.load_array(path))
        X = change(model, X) if change else X
        if X is not None:
            (dst / "descriptors" / path.name).write_bytes(pickle.dumps(X, protocol=4))
    return dst


def test_assigning_the_training_images_gives_their_own_clusters(tiny):
    data, db = tiny
    r = assign(data, db, name="self")
    b = batches.Batch(db, "self")
    with store.connect(db) as con:
        for m in ("alpha", "beta"):
            own = con.execute("SELECT cluster FROM assignments WHERE model = ? ORDER BY image_id", [m]).fetchnumpy()
            got = b.df("SELECT cluster, confidence FROM assignments WHERE model = ? ORDER BY image_id", [m])
            assert (got["cluster"].to_numpy() == own["cluster"]).mean() >= 0.99  # KMeans: nearest centre
            assert ((got["confidence"] >= 0) & (got["confidence"] <= 1)).all()
            assert r["models"][m]["novel"] <= 0.02 * r["images"]
    assert b.meta["build"] == store.resolve(db).name and b.n_images == 300
    assert len(b.thumbnails(range(300))) == 300 and b.thumbnails([0])[0][:2] == b"\xff\xd8"
    b.close()


def test_far_away_images_are_novel(tiny, tmp_path):
    data, db = tiny
    rng = np.random.default_rng(1)
    new = copy_dataset(data, tmp_path / "new",
                       lambda m, X: X + (rng.normal(size=X.shape[1]) * 50 * X.std()).astype(np.float32))
    r = assign(new, db, name="far")
    assert all(info["novel"] == r["images"] for info in r["models"].values())


@pytest.mark.parametrize("change, says", [
    (lambda m, X: X[:, :-1] if m == "beta" else X, "has 23 dims but the database's beta has 24"),
    (lambda m, X: None if m == "alpha" else X, "no file for model(s) alpha"),
    (lambda m, X: X[:-1], "has 299 rows but images_paths.csv has 300"),
])
def test_mismatched_models_or_dims_stop_with_one_line_and_write_nothing(tiny, tmp_path, change, says):
    data, db = tiny
    new = copy_dataset(data, tmp_path / "new", change)
    before = sorted(os.listdir(db.parent))
    batch_files = sorted(os.listdir(batches.batches_dir(db))) if batches.batches_dir(db).exists() else []
    res = run_cli("assign", str(new), "--db", str(db), "--name", "bad")
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and says in res.stderr and res.stderr.count("\n") == 1
    assert sorted(os.listdir(db.parent)) == before
    after = sorted(os.listdir(batches.batches_dir(db))) if batches.batches_dir(db).exists() else []
    assert after == batch_files and "bad" not in batches.list_batches(db)


def test_existing_name_and_old_database_are_refused(tiny, tmp_path):
    data, db = tiny
    assign(data, db, name="twice")
    res = run_cli("assign", str(data), "--db", str(db), "--name", "twice")
    assert res.returncode == 2 and "exists already" in res.stderr
    # a build made before assign existed has no PCA or centres
    old = tmp_path / "old.duckdb"
    shutil.copy(store.resolve(db), old)
    with duckdb.connect(str(old)) as con:
        for t in projection.TABLES:
            con.execute(f"DROP TABLE {t}")
    res = run_cli("assign", str(data), "--db", str(old))
    assert res.returncode == 2 and "built before `assign` existed" in res.stderr
    assert not batches.batches_dir(old).exists()


def test_a_failed_assign_leaves_no_batch(tiny, monkeypatch):
    data, db = tiny

    def broken(*a, **k):
        yield [images.make_thumbnail(None)]
        raise OSError("disk full")

    monkeypatch.setattr(images, "iter_thumbnails", broken)
    with pytest.raises(OSError):
        assign(data, db, name="broken")
    assert "broken" not in batches.list_batches(db)
    assert not [p for p in os.listdir(batches.batches_dir(db)) if p.startswith("broken")]


def test_a_loaded_combination_is_assigned_as_the_loader_clustered_it(tmp_path):
    """The real loader builds a combination 'alpha+beta' (its parts' reduced vectors × weights, concatenated);
    assign reduces new images the same way and places them by that model's stored centres."""
    data = make_tiny(tmp_path / "data")
    db = tmp_path / "combo.duckdb"
    pipeline.load(data, db, dataclasses.replace(TINY_CONFIG, combinations=("alpha+beta",)))
    with store.connect(db) as con:
        parts = projection.combination_parts(con, "alpha+beta")
        assert [p for p, _ in parts] == ["alpha", "beta"]
        Z = projection.stored_vectors(con, "alpha+beta")
        assert Z.shape[1] == sum(projection.stored_vectors(con, p).shape[1] for p, _ in parts)
        # the contract: the build's own descriptors, reduced as assign reduces new ones, are its stored vectors
        X = {p: np.asarray(descriptors.load_array(f), dtype=np.float32) for p, f in descriptors.discover(data).items()}
        np.testing.assert_allclose(projection.reduce(con, "alpha+beta", X), Z, rtol=1e-4, atol=1e-4)
        labels = con.execute("SELECT cluster FROM assignments WHERE model = 'alpha+beta' ORDER BY image_id"
                             ).fetchnumpy()["cluster"]
    assert len(np.unique(labels)) >= 2
    assign(data, db, name="combo")
    b = batches.Batch(db, "combo")
    try:
        got = b.df("SELECT cluster FROM assignments WHERE model = 'alpha+beta' ORDER BY image_id")["cluster"].to_numpy()
        assert (got == labels).mean() >= 0.99  # KMeans: every training image is nearest its own centre
        assert set(b.models()) == {"alpha", "beta", "alpha+beta"}
    finally:
        b.close()


def test_a_cosine_model_is_assigned_as_the_loader_reduced_it(tmp_path):
    """The loader L2-normalises a cosine model's rows before its PCA; assign must do the same to new rows."""
    data = make_tiny(tmp_path / "data")
    db = tmp_path / "cos.duckdb"
    pipeline.load(data, db, dataclasses.replace(TINY_CONFIG, metrics={"alpha": "cosine"}))
    with store.connect(db) as con:
        assert dict(con.execute("SELECT model, metric FROM models").fetchall()) == {"alpha": "cosine",
                                                                                   "beta": "euclidean"}
        X = {p: np.asarray(descriptors.load_array(f), dtype=np.float32) for p, f in descriptors.discover(data).items()}
        raw = X["alpha"].copy()
        np.testing.assert_allclose(projection.reduce(con, "alpha", X), projection.stored_vectors(con, "alpha"),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(X["alpha"], raw)  # the caller's rows are left as they were
        labels = con.execute("SELECT cluster FROM assignments WHERE model = 'alpha' ORDER BY image_id"
                             ).fetchnumpy()["cluster"]
    assign(data, db, name="again")
    b = batches.Batch(db, "again")
    try:
        got = b.df("SELECT cluster FROM assignments WHERE model = 'alpha' ORDER BY image_id")["cluster"].to_numpy()
        assert (got == labels).mean() >= 0.99
    finally:
        b.close()
