"""`python -m lib export` and the reviewed/flagged lists."""
import io
import os
import subprocess
import sys

import pandas as pd
import pytest

from lib import export, reviews
from lib.queries import Explorer

from .tiny import load_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def reviewed_db(tmp_path_factory):
    _, db = load_tiny(tmp_path_factory.mktemp("export"))
    ex = Explorer(db)
    rev = reviews.Reviews(reviews.default_path(db))
    top = ex.outliers("consensus", 1, 3)[0]
    for (_, r), v in zip(top.iterrows(), ("outlier", "fine", "unsure")):
        rev.set_verdict(r["path"], v, f"note {v}", image_id=int(r["image_id"]), build=ex.build)
    rev.set_verdict("9/99999/gone.jpg", "outlier", "from an image no longer in the data")
    reviews.name_cluster(ex, rev, "beta", 1, "beta one")
    yield db, ex, rev, top
    ex.close()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_export_cli_writes_every_image_and_model(reviewed_db, tmp_path, suffix):
    db, ex, rev, top = reviewed_db
    out = tmp_path / f"labels.{suffix}"
    res = subprocess.run([sys.executable, "-m", "lib", "export", "--db", str(db), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(df.columns) == export.IMAGE_COLUMNS
    assert len(df) == ex.n_images * 2 and set(df["model"]) == {"alpha", "beta"}
    row = df[(df["image_id"].astype(int) == int(top.loc[1, "image_id"])) & (df["model"] == "alpha")].iloc[0]
    assert (row["path"], row["verdict"], row["note"]) == (top.loc[1, "path"], "fine", "note fine")
    assert int(row["consensus_rank"]) == 2
    named = df[df["cluster_name"] == "beta one"]
    assert set(named["model"]) == {"beta"} and set(named["cluster"].astype(int)) == {1}
    assert len(named) == ex.clusters("beta").set_index("cluster").loc[1, "size"]
    # clusters as in the database
    a = ex.df("SELECT image_id, cluster FROM assignments WHERE model = 'alpha' ORDER BY image_id")
    mine = df[df["model"] == "alpha"].sort_values("image_id", key=lambda s: s.astype(int))
    assert (mine["cluster"].astype(int).to_numpy() == a["cluster"].to_numpy()).all()


def test_export_refuses_other_formats(reviewed_db, tmp_path):
    db = reviewed_db[0]
    res = subprocess.run([sys.executable, "-m", "lib", "export", "--db", str(db), "--out", str(tmp_path / "x.xlsx")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "must end in .csv or .parquet" in res.stderr
    assert not list(tmp_path.iterdir())


def test_reviewed_and_flagged_lists(reviewed_db):
    db, ex, rev, top = reviewed_db
    reviewed = export.reviewed_list(ex, rev)
    assert len(reviewed) == 4
    assert list(reviewed["consensus_rank"][:3]) == [1, 2, 3]  # by rank, the unknown path last
    assert reviewed["path"].iloc[-1] == "9/99999/gone.jpg" and pd.isna(reviewed["image_id"].iloc[-1])
    flagged = export.flagged_list(ex, rev)
    n_flagged = ex.scalar("SELECT count(*) FROM outliers WHERE model = 'consensus' AND flagged_by <> ''")
    assert len(flagged) == n_flagged > 0 and flagged["consensus_rank"].is_monotonic_increasing
    # every flagged image says which model and detectors flagged it
    for models, why in zip(flagged["flagged_by_models"], flagged["flagged_by_detectors"]):
        assert {m.split(":")[0] for m in why.split("; ")} >= set(models.split(","))
    back = pd.read_parquet(io.BytesIO(export.to_bytes(flagged, "parquet")))
    assert back.equals(flagged)
    assert export.to_bytes(reviewed, "csv").decode().splitlines()[0].startswith("path,image_id,vehicle_id,verdict")
