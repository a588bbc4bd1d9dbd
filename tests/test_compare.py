"""Comparing models on the demo database: algorithms, combinations, evidence, ranking."""
import os
import shutil

import numpy as np
import pytest

from lib import pipeline
from lib.queries import Explorer

from .conftest import SESSION_ALGORITHMS
from .test_pipeline import run_cli
from .tiny import make_tiny


@pytest.fixture(scope="module")
def ex(demo_db):
    e = Explorer(demo_db[0])
    yield e
    e.close()


def test_every_algorithm_ran_on_every_model_and_row(ex, demo_db):
    n = ex.n_images
    load_seconds = demo_db[1]["seconds"]
    runs = ex.algorithm_runs()
    models = ex.model_names()
    assert len(models) == 6
    assert set(runs["algorithm"]) == set(SESSION_ALGORITHMS)
    assert len(runs) == len(models) * len(SESSION_ALGORITHMS)
    for r in runs.itertuples():
        got = ex.rows("""SELECT count(*), count(DISTINCT cluster) FILTER (WHERE cluster >= 0), avg((cluster < 0)::INT)
                         FROM algorithm_assignments WHERE model = ? AND algorithm = ?""", [r.model, r.algorithm])[0]
        assert got[0] == n  # every row
        assert got[1] == r.n_clusters >= 2
        assert got[2] == pytest.approx(r.noise_share)
        if r.algorithm != "hdbscan":
            assert r.noise_share == 0 and r.k == r.n_clusters
        assert 0 < r.seconds < load_seconds  # the run's own time, a part of the load's
        assert -1 <= r.silhouette <= 1 and r.davies_bouldin > 0
        sizes = ex.clusters(r.model, r.algorithm)
        assert sizes["size"].sum() == n and sizes["color_name"].notna().all()
        assert len(ex.algorithm_sweep(r.model, r.algorithm)) >= 3
    # every model's runs took part of the load's time, not more than all of it
    assert (runs.groupby("model")["seconds"].sum() < load_seconds).all()
    default = runs[runs.is_default]
    assert set(default["algorithm"]) == {"kmeans"} and len(default) == len(models)
    # the default run is the `assignments` table
    same = ex.scalar("""SELECT count(*) FROM assignments a JOIN algorithm_assignments b USING (model, image_id)
                        WHERE b.algorithm = 'kmeans' AND a.cluster = b.cluster""")
    assert same == n * len(models)


def test_combination_blocks_have_equal_total_variance(ex):
    name = "vdc_type+vdc_color"
    parts = ex.combination_parts(name)
    assert list(parts["part"]) == ["vdc_type", "vdc_color"] and list(parts["position"]) == [0, 1]
    dims = ex.models().set_index("model")["pca_dim"]
    Z = np.stack(ex.df(f'SELECT vec FROM "{ex.models().set_index("model").loc[name, "vector_table"]}" '
                       "ORDER BY image_id")["vec"].to_numpy())
    assert Z.shape[1] == dims["vdc_type"] + dims["vdc_color"] == dims[name]
    a, b = Z[:, :dims["vdc_type"]], Z[:, dims["vdc_type"]:]
    assert a.var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    assert b.var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    # the part's stored vectors times its weight are the block
    part = np.stack(ex.df('SELECT vec FROM "vectors_vdc_type" ORDER BY image_id')["vec"].to_numpy())
    np.testing.assert_allclose(a, part * parts["weight"].iloc[0], rtol=1e-4, atol=1e-5)


def test_evidence_and_ranking_are_stored(ex):
    t = ex.compare()
    assert t["rank_neighbours"].min() == 1 and t["rank_neighbours"].between(1, 6).all()
    assert t["rank_groups"].min() == 1 and t["rank_groups"].between(1, 6).all()
    assert (t.loc[t["rank_groups"] == 1, "structure"] != "none").all()
    assert t["rank_groups_reason"].str.contains("mean rank").all()
    assert t["rank_neighbours_reason"].str.contains("same-vehicle recall@10").all()
    assert t["structure"].isin(["clear", "weak", "none"]).all() and t["metric"].isin(["euclidean", "cosine"]).all()
    for col in ("same_vehicle_recall", "vehicle_consistency", "stability_ari"):
        assert t[col].between(0, 1).all()
    assert t["consistency_kappa"].between(-1, 1).all() and (t["consistency_expected"] > 0).all()
    # the re-identification network finds the other photos of a vehicle better than the colour one
    rec = t.set_index("model")["same_vehicle_recall"]
    assert rec["osnet"] > rec["vdc_color"]
    agree = ex.agreement()
    assert len(agree) == 36
    diag = agree[agree.model_a == agree.model_b]
    assert (diag[["ari", "nmi", "knn_overlap"]] == 1).all().all()
    assert agree[agree.model_a != agree.model_b]["knn_overlap"].lt(1).all()


def test_a_noise_descriptor_is_ranked_last(demo_dir, tmp_path):
    data = tmp_path / "data"
    (data / "descriptors").mkdir(parents=True)
    for f in (demo_dir / "descriptors").iterdir():
        os.symlink(f, data / "descriptors" / f.name)
    os.symlink(demo_dir / "raw_data", data / "raw_data")
    shutil.copy(demo_dir / "images_paths.csv", data / "images_paths.csv")
    n = len((data / "images_paths.csv").read_text().splitlines()) - 1
    np.save(data / "descriptors" / "noise.npy", np.random.default_rng(0).normal(size=(n, 64)).astype(np.float32))
    cfg = pipeline.LoadConfig(map_iters=50, map_exaggeration_iters=50, algorithms=("kmeans",), combinations=())
    report = pipeline.load(data, tmp_path / "v.duckdb", cfg)
    assert report["structure"]["noise"] == "none"
    assert report["ranks"]["noise"] == max(report["ranks"].values()) > 1  # last for groups, never recommended
    assert report["ranks_neighbours"]["noise"] == max(report["ranks_neighbours"].values())


@pytest.mark.parametrize("args, message", [
    (["--combine", "alpha+gamma"], "combination 'alpha+gamma': no descriptor file for gamma"),
    (["--algorithms", "kmeans,dbscan"], "unknown algorithm(s) dbscan"),
])
def test_bad_combination_or_algorithm_is_one_line(tmp_path, args, message):
    data = make_tiny(tmp_path / "data")
    r = run_cli("load", str(data), "--db", str(tmp_path / "v.duckdb"), "--k-max", "4", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "v.duckdb").exists()
