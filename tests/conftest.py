"""Shared fixtures: one small demo dataset and one database built from it, per session."""
import os
from pathlib import Path

import pytest

from lib import demo, pipeline

SESSION_ALGORITHMS = ("kmeans", "ward", "hdbscan")
DEMO_VEHICLES = 250  # about 2,500 images (neighbours exact; pynndescent has its own tests and the 50k suite)
DEMO_SEED = int(os.environ.get("DEMO_SEED", 7))  # the test data's seed: `DEMO_SEED=11 make test` tries other data


def demo_seed(default):
    """Another test's demo-data seed: its own ``default``, or under another DEMO_SEED a seed of that run's own."""
    return default if DEMO_SEED == 7 else DEMO_SEED * 100 + default


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    demo.generate(d, n_vehicles=DEMO_VEHICLES, seed=DEMO_SEED)
    return d


@pytest.fixture(scope="session")
def demo_db(demo_dir, tmp_path_factory):
    """A database built by the real loader; the map runs fewer iterations, and of the algorithms
    beside KMeans only the two built on the neighbour graph run (every algorithm has its own tests
    on small inputs, and test_bench loads with all of them)."""
    db = tmp_path_factory.mktemp("db") / "vehicles.duckdb"
    cfg = pipeline.LoadConfig(map_iters=100, map_exaggeration_iters=100, algorithms=SESSION_ALGORITHMS)
    report = pipeline.load(demo_dir, db, cfg)
    return db, report


@pytest.fixture(scope="session")
def truth(demo_dir):
    import pandas as pd

    return pd.read_csv(demo_dir / "truth.csv").sort_values("image_id").reset_index(drop=True)


@pytest.fixture()
def app_db(demo_db, monkeypatch, tmp_path):
    """Point the app (ui.DB_PATH) at the demo database, through a link of this test's own.

    Reviews and batches live beside the link, so every test starts with none.
    """
    from lib import store

    db = tmp_path / "vehicles.duckdb"
    store.publish(db, store.resolve(demo_db[0]))
    monkeypatch.setenv("VEHICLE_DB", str(db))
    import ui

    monkeypatch.setattr(ui, "DB_PATH", Path(db))
    return db


REALISTIC_VEHICLES = 2200  # about 23,500 images: past the 20,000-row sweep sample, so the loader samples


@pytest.fixture(scope="session")
def realistic_dir(tmp_path_factory):
    """Descriptors shaped like the real set (lib.realistic): re-ID-like, sparse CNN-like, unbalanced
    classes, a model with no structure, bursts of near-copies, oddities seen by one model, broken rows."""
    from lib import realistic

    d = tmp_path_factory.mktemp("realistic")
    realistic.generate(d, n_vehicles=REALISTIC_VEHICLES, seed=int(os.environ.get("DEMO_SEED", 7)), pictures=False)
    return d


@pytest.fixture(scope="session")
def realistic_db(realistic_dir, tmp_path_factory):
    """The real loader on the realistic set: every stage, KMeans and HDBSCAN, no combination."""
    db = tmp_path_factory.mktemp("realistic-db") / "vehicles.duckdb"
    cfg = pipeline.LoadConfig(map_iters=100, map_exaggeration_iters=100, algorithms=("kmeans", "hdbscan"),
                              combinations=())
    report = pipeline.load(realistic_dir, db, cfg)
    return db, report


@pytest.fixture(scope="session")
def realistic_truth(realistic_dir):
    import pandas as pd

    return pd.read_csv(realistic_dir / "truth.csv", keep_default_na=False).sort_values("image_id").reset_index(drop=True)
