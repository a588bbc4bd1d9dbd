"""Pages on a build with near-duplicate groups and calibrated outliers (the realistic set), and an old build."""
from pathlib import Path

import pytest

from lib import store
from lib.queries import Explorer

from .test_pages import run_page


@pytest.fixture()
def real_app(realistic_db, monkeypatch, tmp_path):
    db = tmp_path / "vehicles.duckdb"
    store.publish(db, store.resolve(realistic_db[0]))
    monkeypatch.setenv("VEHICLE_DB", str(db))
    import ui

    monkeypatch.setattr(ui, "DB_PATH", Path(db))
    return db


def captions(at):
    return [i.captions[0] for i in at.image]


@pytest.fixture(scope="module")
def groups(realistic_db):
    ex = Explorer(realistic_db[0])
    df = ex.df("SELECT group_id, image_id, size FROM duplicate_groups ORDER BY group_id, image_id")
    ex.close()
    return df


def test_similar_hides_the_query_s_own_frames_until_asked(real_app, groups):
    first = groups[groups["size"] >= 3].iloc[0]
    members = set(groups.loc[groups["group_id"] == first["group_id"], "image_id"])
    query = int(first["image_id"])
    at = run_page("similar", model="osnet", image=str(query))
    assert not at.exception
    shown = {int(c.split(" ")[0].lstrip("#")) for c in captions(at)[1:]}
    assert not shown & members
    assert any(f"one of {len(members)} near-identical frames" in c.value for c in at.caption)
    at.toggle(key="own_frames").set_value(True).run()
    assert at.query_params["frames"] == "1"
    shown = {int(c.split(" ")[0].lstrip("#")) for c in captions(at)[1:]}
    assert members - {query} <= shown
    assert sum("own frame" in c for c in captions(at)) == len(members) - 1
    # the link carries the toggle
    again = run_page("similar", model="osnet", image=str(query), frames="1")
    assert again.toggle(key="own_frames").value is True


def test_a_group_is_one_tile_with_its_count_in_other_galleries(real_app, groups):
    ex = Explorer(store.resolve(real_app))
    try:
        member = groups[groups["size"] >= 3].iloc[0]
        cluster = ex.assignment("vdc_type", int(member["image_id"]))
        rep, rnd = ex.cluster_gallery("vdc_type", cluster, n=500)
        grouped = set(groups["image_id"])
        shown = set(rep["image_id"]) | set(rnd["image_id"])
        non_reps = set(groups.loc[groups["group_id"] != groups["image_id"], "image_id"])
        assert not shown & non_reps
        assert (rep.loc[rep["image_id"].isin(grouped), "copies"] >= 2).all()
    finally:
        ex.close()
    at = run_page("clusters", model="vdc_type", cluster=str(cluster))
    assert not at.exception
    assert any(" frames" in c for c in captions(at)) or not (rep["copies"].head(12) > 1).any()


def test_outliers_page_says_how_rare_and_why_and_lists_a_group_once(real_app, groups):
    at = run_page("outliers", model="consensus")
    assert not at.exception
    caps = captions(at)
    assert len(caps) == 24 and all(" · 1 in " in c for c in caps)
    whys = [c.value for c in at.caption if c.value.startswith("why: ")]
    assert len(whys) == 24
    assert any("NaN/inf" in w for w in whys)  # broken rows come first, with their cause
    assert "flagged entries (an entry is an image or a group" in at.markdown[0].value
    non_reps = set(groups.loc[groups["group_id"] != groups["image_id"], "image_id"])
    ex = Explorer(store.resolve(real_app))
    try:
        every, total = ex.outliers("consensus", 1, ex.n_images)
    finally:
        ex.close()
    assert not set(every["image_id"]) & non_reps
    assert total == ex.n_images - len(non_reps)


def test_overview_gives_the_share_of_images_in_groups(real_app, groups):
    at = run_page("overview")
    assert not at.exception
    metric = next(m for m in at.metric if m.label == "In near-duplicate groups")
    ex = Explorer(store.resolve(real_app))
    n = ex.n_images
    ex.close()
    assert metric.value == f"{len(groups) / n:.1%}"


@pytest.mark.parametrize("page", ["overview", "metrics", "clusters", "similar", "outliers", "compare"])
def test_an_older_build_is_named_with_how_to_rebuild(app_db, tmp_path, monkeypatch, page):
    import shutil

    import duckdb

    import ui

    old = tmp_path / "old-build.duckdb"
    shutil.copy(store.resolve(app_db), old)
    with duckdb.connect(str(old)) as con:
        con.execute("DELETE FROM meta WHERE key = 'schema_version'")  # as every build before the version
    link = tmp_path / "old.duckdb"
    store.publish(link, old)
    monkeypatch.setattr(ui, "DB_PATH", link)
    at = run_page(page)
    assert not at.exception
    assert len(at.error) == 1
    text = at.error[0].value
    assert "older version of the loader (schema 1" in text and "python -m lib load" in text
    assert not at.image and not at.dataframe
