"""Every page under Streamlit's AppTest, against the demo database."""
import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120
PAGES = ("overview", "metrics", "clusters", "similar", "outliers", "compare")


def run_page(name, **params):
    at = AppTest.from_file(f"../pages/{name}.py", default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def no_errors(at):
    assert not at.exception, [e.message for e in at.exception]


def images(at):
    return at.image


def test_overview(app_db):
    at = run_page("overview")
    no_errors(at)
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Images", "Vehicles", "Models"]
    assert at.metric[2].value == "6"  # four models and the two default combinations
    assert len(at.dataframe) >= 1


def test_metrics_page_follows_the_model(app_db):
    at = run_page("metrics", model="vdc_color")
    no_errors(at)
    assert at.title[0].value == "Metrics: vdc_color"
    assert at.sidebar.selectbox[0].value == "vdc_color"
    verdict = (at.success or at.error or at.warning)[0].value  # the verdict comes before any note on k
    assert "cluster structure** — chosen **k =" in verdict and " ± " in verdict
    for model in ("osnet", "vdc_type", "osnet"):  # one pick after another, each one kept
        at.sidebar.selectbox[0].set_value(model).run()
        assert at.title[0].value == f"Metrics: {model}"
        assert at.query_params["model"] == model
    bad = run_page("metrics", model="nonsense")
    assert "Ignored model 'nonsense'" in bad.sidebar.warning[0].value
    assert bad.title[0].value == f"Metrics: {bad.sidebar.selectbox[0].value}"


def test_clusters_page_shows_a_gallery(app_db):
    at = run_page("clusters", model="vdc_type", cluster="1")
    no_errors(at)
    assert at.selectbox[0].value == 1
    assert len(images(at)) == 12 + 6 + 12  # nearest the centre, on the boundary, random
    assert [h.value for h in at.subheader][:3] == ["Cluster 1: nearest the centre", "Cluster 1: on the boundary",
                                                   "Cluster 1: random images"]
    last = len(at.selectbox[0].options) - 1  # whatever k this machine chose for vdc_type
    for wanted in (last, 0, last // 2):  # one pick after another, each one kept
        at.selectbox[0].set_value(wanted).run()
        assert at.selectbox[0].value == wanted and at.query_params["cluster"] == str(wanted)
        assert at.subheader[0].value == f"Cluster {wanted}: nearest the centre"


def test_similar_page_from_the_url_and_clicking_a_neighbour(app_db):
    at = run_page("similar", image="7", model="osnet")
    no_errors(at)
    assert at.text_input[0].value == "7"
    assert len(images(at)) == 13  # the query and 12 neighbours
    first = [b for b in at.button if b.label == "search from here"][0]
    first.click().run()
    no_errors(at)
    new_id = at.query_params["image"]
    assert new_id != "7" and at.text_input[0].value == new_id


def test_similar_neighbour_count_travels_in_the_link(app_db):
    at = run_page("similar", image="7", model="osnet", n="20")
    no_errors(at)
    assert at.select_slider(key="n_neighbours").value == 20 and len(images(at)) == 21
    at.select_slider(key="n_neighbours").set_value(4).run()
    assert at.query_params["n"] == "4" and len(images(at)) == 5
    at.select_slider(key="n_neighbours").set_value(12).run()  # the default leaves the link short
    assert "n" not in at.query_params and len(images(at)) == 13
    bad = run_page("similar", image="7", model="osnet", n="7")
    no_errors(bad)
    assert any("Ignored n '7'" in w.value and "showing 12" in w.value for w in bad.warning)
    assert len(images(bad)) == 13 and "n" not in bad.query_params


def test_pictures_are_inline_so_none_can_expire(app_db):
    # Streamlit drops media files when a session's next run ends; a browser still
    # fetching the previous page's pictures got 404s under load
    import base64

    from lib.queries import Explorer

    at = run_page("similar", image="7", model="osnet")
    urls = [i.proto.imgs[0].url for i in at.image]
    assert len(urls) == 13 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    ex = Explorer(app_db)
    try:
        assert base64.b64decode(urls[0].split(",", 1)[1]) == ex.thumbnails([7])[7]
    finally:
        ex.close()


@pytest.mark.parametrize("page", ["similar", "compare"])
def test_the_image_box_takes_one_search_after_another(app_db, page):
    # the box's default came from the URL, so each edit made it another widget and every second
    # search snapped back to the previous ID (found by the load test)
    at = run_page(page, image="7")
    for wanted in ("40", "41", "12", "12", "3"):
        at.text_input[0].input(wanted).run()
        no_errors(at)
        assert at.query_params["image"] == wanted and at.text_input[0].value == wanted
        assert f"query #{wanted}" in at.image[0].captions


@pytest.mark.parametrize("bad, says", [("abc", "nothing matches 'abc'"), ("99999999", "no image 99999999"), ("-1", "no image -1")])
def test_similar_page_bad_ids_get_a_message(app_db, bad, says):
    at = run_page("similar", image=bad)
    no_errors(at)
    assert says in at.warning[0].value
    assert not images(at)


def test_outliers_page_pages_through_the_ranking(app_db):
    at = run_page("outliers", model="consensus", page="2", flagged="0")  # the whole ranking, not its top 1%
    no_errors(at)
    assert at.number_input[0].value == 2
    assert at.markdown[0].value.startswith("25–48 of")
    assert len(images(at)) == 24
    ranks = [int(i.captions[0].split(" ")[0].lstrip("#")) for i in images(at)]
    assert sorted(ranks) == list(range(25, 49))  # (the tree lists the grid column by column)
    at = run_page("outliers", page="not-a-page")
    no_errors(at)
    assert at.number_input[0].value == 1


def shown_ids(at):
    return [int(i.captions[0].split("id ")[1].split(" ")[0]) for i in images(at)]


def test_outliers_filters_come_from_and_go_to_the_url(app_db):
    from lib.queries import Explorer

    at = run_page("outliers", model="consensus", cause="lof", cmodel="vdc_type", cluster="1", page="1",
                  flagged="0")
    no_errors(at)
    assert not at.warning
    assert [at.selectbox[i].value for i in range(3)] == ["lof", "vdc_type", 1]
    ids = shown_ids(at)
    assert ids
    ex = Explorer(app_db)
    try:
        for i in ids:  # every image shown is in the cluster and flagged by lof under some model
            assert ex.assignment("vdc_type", i) == 1
            assert ex.scalar("""SELECT count(*) FROM outliers WHERE image_id = ? AND model <> 'consensus'
                                AND list_contains(string_split(flagged_by, ','), 'lof')""", [i]) >= 1
        whys = [c.proto.help for c in at.caption if c.value.startswith(("why:", "nothing unusual"))]
        assert len(whys) == len(ids) and all("top 1% by " in w and "lof" in w for w in whys), whys
    finally:
        ex.close()
    # the URL reproduces the view; changing a filter goes back to page 1
    assert dict(at.query_params) == {"model": "consensus", "page": "1", "cause": "lof", "cmodel": "vdc_type",
                                    "cluster": "1", "flagged": "0"}
    at.selectbox[0].set_value("any").run()
    no_errors(at)
    assert "cause" not in at.query_params and at.query_params["cluster"] == "1"
    at.number_input[0].set_value(2).run()
    assert at.query_params["page"] == "2"
    at.selectbox[2].set_value(0).run()
    assert at.query_params["page"] == "1" and at.query_params["cluster"] == "0"
    at.selectbox[1].set_value("vdc_color").run()  # another model's cluster 0 is another cluster
    no_errors(at)
    assert "cluster" not in at.query_params and at.query_params["cmodel"] == "vdc_color"


def test_outliers_bad_url_values_get_a_message(app_db):
    at = run_page("outliers", model="vdc_color", cause="osnet", cluster="999", page="-4")
    no_errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "'osnet'" in warnings and "'999'" in warnings  # osnet is no detector of a single model
    assert at.number_input[0].value == 1 and len(images(at)) == 24
    at = run_page("outliers", model="consensus", page="9999")  # past the flagged entries' last page
    no_errors(at)
    last = at.number_input[0].value
    assert last < 9999 and at.query_params["page"] == str(last)
    assert any("page 9,999" in w.value and f"showing page {last}" in w.value for w in at.warning)


def test_a_verdict_is_saved_at_once_and_shown_after_reload(app_db):
    from lib import reviews

    at = run_page("outliers", model="consensus", page="1")
    first = shown_ids(at)[0]
    at.button_group(key=f"verdict-{first}").set_value("outlier").run()
    at.text_input(key=f"note-{first}").input("empty road").run()
    no_errors(at)
    rev = reviews.Reviews(reviews.default_path(app_db))
    (path, (verdict, note)), = rev.verdicts().items()
    assert (verdict, note) == ("outlier", "empty road") and path.count("/") == 2
    # a new session (a reload) shows it; "unreviewed only" hides it
    again = run_page("outliers", model="consensus", page="1")
    assert again.button_group(key=f"verdict-{first}").value == "outlier"
    assert again.text_input(key=f"note-{first}").value == "empty road"
    hidden = run_page("outliers", model="consensus", page="1", unreviewed="1")
    no_errors(hidden)
    assert hidden.toggle[0].value and first not in shown_ids(hidden) and len(images(hidden)) == 24


def ranked_ids(at):
    """The gallery's image IDs in rank order (the tree lists the grid column by column)."""
    tiles = sorted((int(c.split(" ")[0].lstrip("#")), int(c.split("id ")[1].split(" ")[0]))
                   for c in (i.captions[0] for i in images(at)))
    return [i for _, i in tiles]


def test_keys_review_in_rank_order_bulk_verdicts_keep_hand_ones_and_undo(app_db):
    from lib import reviews
    from lib.queries import Explorer

    ex = Explorer(app_db)
    rev = reviews.Reviews(reviews.default_path(app_db))

    def given():
        return {i: rev.verdicts([paths[i]]).get(paths[i], (None,))[0] for i in ids}

    at = run_page("outliers", model="consensus", page="1", flagged="0")
    ids = ranked_ids(at)
    assert at.progress[0].value == 0 and " flagged entries reviewed; 0 outlier, 0 fine, 0 unsure" in at.progress[0].text
    at.button(key="key-fine").click().run()  # F: the highlighted entry (rank 1), then the next unreviewed
    at.button(key="key-outlier").click().run()  # O
    no_errors(at)
    page2 = run_page("outliers", model="consensus", page="2", flagged="0")
    ids += ranked_ids(page2)
    paths = ex.paths(ids)
    assert [given()[i] for i in ids[:3]] == ["fine", "outlier", None]
    assert "2 of " in at.progress[0].text and "1 outlier, 1 fine" in at.progress[0].text
    at.button(key="key-undo").click().run()  # Z: the outlier verdict goes, rank 2 is highlighted again
    assert [given()[i] for i in ids[:2]] == ["fine", None]
    assert any("Undone: outlier on #2" in i.value for i in at.info)
    at.button(key="key-previous").click().run()  # Left: back to rank 1, which U changes
    at.button(key="key-unsure").click().run()
    assert [given()[i] for i in ids[:2]] == ["unsure", None]
    # one verdict for ranks 1-30 (onto page 2): the verdict given by key stays
    at.radio(key="bulk_scope").set_value("ranks").run()
    at.number_input(key="bulk_to").set_value(30).run()
    at.button_group(key="bulk_verdict").set_value("fine").run()
    at.button(key="bulk_give").click().run()
    no_errors(at)
    assert any("fine given to 29 of 30 entries" in i.value for i in at.info)
    after = given()
    assert after[ids[0]] == "unsure" and all(after[i] == "fine" for i in ids[1:30])
    assert after[ids[30]] is None
    at.button(key="key-undo").click().run()  # undo the bulk verdict: only the key's verdict is left
    assert [i for i, v in given().items() if v] == [ids[0]]
    ex.close()


def test_clusters_page_names_a_cluster(app_db):
    at = run_page("clusters", model="vdc_color", cluster="2")
    no_errors(at)
    at.text_input[0].input("silver cars").run()
    no_errors(at)
    again = run_page("clusters", model="vdc_color", cluster="2")
    assert again.text_input[0].value == "silver cars"
    assert "“silver cars”" in again.subheader[0].value
    assert "“silver cars”" in again.selectbox[0].options[2]
    other = run_page("clusters", model="vdc_type", cluster="2")  # names belong to one model
    assert "silver cars" not in other.subheader[0].value and other.text_input[0].value == ""
    # the Outliers page's cluster filter shows it too
    out = run_page("outliers", model="vdc_color")
    assert any("silver cars" in o for o in out.selectbox[1].options)


def test_clusters_page_shows_an_assigned_batch(app_db, demo_dir, tmp_path):
    from lib.assign import assign

    from .test_assign import split_by_vehicle

    held = split_by_vehicle(demo_dir, tmp_path / "rest", tmp_path / "new", share=0.02)
    assign(tmp_path / "new", app_db, name="new-cars")
    at = run_page("clusters", model="vdc_type", cluster="0", batch="new-cars")
    no_errors(at)
    assert "New batch `new-cars`" in at.subheader[-1].value and f"{len(held):,} images" in at.subheader[-1].value
    per_cluster = at.dataframe[-1].value
    assert per_cluster["images"].sum() == len(held)
    n0 = int(per_cluster.set_index("cluster")["images"].get(0, 0))
    assert len(images(at)) == 24 + 6 + min(n0, 24)  # nearest + random, boundary, the batch's
    for on in (True, False, True):
        at.toggle[0].set_value(on).run()
        assert at.toggle[0].value is on and at.query_params.get("novel") == ("1" if on else None)
    for name in ("-", "new-cars", "-"):  # the batch picker: none, the batch, none
        at.sidebar.selectbox(key="batch_pick").set_value(name).run()
        assert at.query_params.get("batch") == (None if name == "-" else name)
        assert ("New batch `new-cars`" in at.subheader[-1].value) == (name != "-")
    bad = run_page("clusters", model="vdc_type", batch="../etc")
    no_errors(bad)
    assert "Ignored batch" in bad.warning[0].value


def test_pages_work_on_a_build_from_before_assign(app_db, tmp_path):
    import shutil

    import duckdb

    import ui
    from lib import projection, store

    old = tmp_path / "old-build.duckdb"
    shutil.copy(store.resolve(app_db), old)
    with duckdb.connect(str(old)) as con:
        for t in projection.TABLES:
            con.execute(f"DROP TABLE {t}")
    link = tmp_path / "old.duckdb"
    store.publish(link, old)
    ui.DB_PATH = link  # app_db's monkeypatch restores it
    for page, shown in (("outliers", 24), ("clusters", 24 + 6)):  # clusters: nearest + random, boundary
        at = run_page(page, model="vdc_type")
        no_errors(at)
        assert len(images(at)) == shown


def test_entry_point_navigates(app_db):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT).run()
    no_errors(at)
    assert at.title[0].value == "Vehicle cluster explorer"


def test_first_start_builds_the_demo_database(tmp_path, monkeypatch):
    import json
    import os

    import ui
    from lib import firststart, pipeline

    from .tiny import TINY_CONFIG

    db = tmp_path / "fresh.duckdb"
    monkeypatch.setattr(ui, "DB_PATH", db)
    monkeypatch.setattr(ui, "DEMO_DIR", tmp_path / "demo")
    monkeypatch.setattr(ui, "DEMO_VEHICLES", 30)
    real_load = pipeline.load
    configs = []

    def small_load(d, path, config=None, progress=None):
        configs.append(config)
        return real_load(d, path, TINY_CONFIG, progress)  # fewer k and map steps

    monkeypatch.setattr(pipeline, "load", small_load)
    started = []

    def fake_full_load(data_dir, db_path):  # the real one runs in test_firststart; here: it runs, as this process
        started.append((data_dir, db_path))
        firststart.status_path(db_path).write_text(json.dumps(
            {"pid": os.getpid(), "started": 0, "stage": "k sweep", "model": "vdc_type+vdc_color"}))

    monkeypatch.setattr(firststart, "start_full_load", fake_full_load)
    at = AppTest.from_file("../streamlit_app.py", default_timeout=600).run()
    no_errors(at)
    assert db.is_symlink() and (tmp_path / "demo" / "images_paths.csv").exists()
    assert configs[0].algorithms == ("kmeans",) and configs[0].combinations == ()  # the first look
    assert started == [(tmp_path / "demo", db)]
    at.run()  # the rerun after the build shows the app, and what is still to come
    no_errors(at)
    assert at.title[0].value == "Vehicle cluster explorer"
    assert at.metric[2].value == "6"
    assert any("Still computing in the background" in i.value and "k sweep of vdc_type+vdc_color" in i.value
               for i in at.info)


def test_pages_say_when_the_background_load_stopped(app_db):
    import json

    from lib import firststart

    firststart.status_path(app_db).write_text(json.dumps(
        {"pid": 1, "started": 0, "stage": "clustering", "failed": "descriptors/osnet.pickle: unreadable",
         "log": "/tmp/x.log"}))
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT).run()
    no_errors(at)
    assert any("stopped before it finished" in w.value and "osnet.pickle: unreadable" in w.value
               for w in at.warning)
    assert at.title[0].value == "Vehicle cluster explorer"  # the page itself still shows


def test_password_gate_shows_no_data_before_sign_in(app_db):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT)
    at.secrets["password"] = "s3cret"
    at.run()
    no_errors(at)
    assert not at.metric and not at.dataframe and not at.image  # nothing of the data
    at.text_input[0].input("wrong").run()
    assert "Wrong password" in at.error[0].value and not at.metric
    at.text_input[0].input("s3cret").run()
    no_errors(at)
    assert at.title[0].value == "Vehicle cluster explorer" and at.metric[0].label == "Images"


def opening_model(db, page):
    """The model a page opens on without ``model=``: the evidence's recommendation for what it shows."""
    from lib.queries import Explorer

    if page == "outliers":
        return "consensus"
    ex = Explorer(db)
    try:
        return ex.recommended("neighbours" if page == "similar" else "groups")[0]
    finally:
        ex.close()


def test_pages_open_on_the_recommended_model_and_say_why(app_db):
    from lib.queries import Explorer

    ex = Explorer(app_db)
    try:
        ranks = ex.compare().set_index("model")
    finally:
        ex.close()
    neighbours = ranks.index[ranks.rank_neighbours == 1][0]
    groups = ranks.index[ranks.rank_groups == 1][0] if (ranks.rank_groups == 1).any() else neighbours
    for page, model, why in (("similar", neighbours, "best at finding the same vehicle"),
                              ("clusters", groups, ""), ("overview", groups, ""), ("metrics", groups, "")):
        at = run_page(page)
        no_errors(at)
        assert at.sidebar.selectbox[0].value == model, page
        assert any(c.value.startswith(f"{model}: {why}") for c in at.sidebar.caption), page
        # a model chosen by link is kept, and the recommendation's caption goes with the default
        other = next(m for m in ranks.index if m != model)
        at = run_page(page, model=other)
        assert at.sidebar.selectbox[0].value == other
        assert not any(c.value.startswith(f"{other}: ") for c in at.sidebar.caption)
    # Outliers opens on the consensus and its flagged entries (the top 1%); a link can ask for all
    at = run_page("outliers")
    no_errors(at)
    assert at.sidebar.selectbox[0].value == "consensus" and at.toggle[0].value is True
    flagged = int(at.markdown[0].value.split(" of ")[1].split(" ")[0].replace(",", ""))
    at = run_page("outliers", flagged="0")
    assert at.toggle[0].value is False and at.query_params["flagged"] == "0"
    everything = int(at.markdown[0].value.split(" of ")[1].split(" ")[0].replace(",", ""))
    assert flagged == -(-everything // 100)  # ceil(1%) of the ranked entries


# every query parameter of every page, with hostile or malformed values
PARAMS = {"overview": ["model"], "metrics": ["model"], "clusters": ["model", "cluster", "view", "region", "image"],
          "similar": ["model", "image", "n"], "outliers": ["model", "page", "map", "region"],
          "compare": ["image", "measure"]}
GARBAGE = ["'; DROP TABLE images; --", "<script>alert(1)</script>", "../../../etc/passwd", "\u00b2",
           "-1", "1e3", "9" * 5000, "\x00"]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("page", PARAMS)
def test_garbage_in_every_url_parameter_gives_a_page_not_a_traceback(app_db, page, garbage):
    at = run_page(page, **{name: garbage for name in PARAMS[page]}, unknown=garbage)
    no_errors(at)
    assert at.title, "the page drew nothing"
    if "model" in PARAMS[page]:  # the page's default model, not the garbage
        assert at.sidebar.selectbox[0].value == opening_model(app_db, page)
    if page == "similar":
        said = " ".join(w.value for w in at.warning)
        assert any(w in said for w in ("no image", "nothing matches", "NUL character"))
        assert "Ignored n " in said and "showing 12" in said  # the count is checked even when the image is bad
        assert not images(at) and at.select_slider(key="n_neighbours").value == 12
    if page == "outliers":
        assert at.number_input[0].value == 1
    if page == "clusters":
        assert at.selectbox[0].value == 0
        said = " ".join(w.value for w in at.warning)
        for what in ("the zoomed view", "the selected region", "image"):  # each bad map parameter is named
            assert f"Ignored {what} " in said
        assert not {"view", "region", "image"} & set(at.query_params)  # and dropped from the link
    if page == "outliers":
        assert "Ignored the map region" in " ".join(w.value for w in at.warning)
    if page == "compare":  # the default measure, and a warning naming what the link asked for
        assert at.radio(key="agree_measure").value == "ari" and "measure" not in at.query_params
        assert any("Ignored measure " in w.value and "showing ari" in w.value for w in at.warning)


def test_a_finished_rebuild_is_served_without_a_restart(tmp_path, monkeypatch):
    import ui
    from lib import pipeline, store

    from .tiny import TINY_CONFIG, make_tiny

    data = make_tiny(tmp_path / "data")
    db = tmp_path / "v.duckdb"
    pipeline.load(data, db, TINY_CONFIG)
    monkeypatch.setattr(ui, "DB_PATH", db)
    at = run_page("overview")
    no_errors(at)
    first = store.resolve(db).name
    assert first in at.caption[0].value
    pipeline.load(data, db, TINY_CONFIG)  # a rebuild while the app runs
    second = store.resolve(db).name
    assert second != first
    at.run()  # the next rerun of the same session
    no_errors(at)
    assert second in at.caption[0].value and first not in at.caption[0].value


@pytest.mark.parametrize("page", PARAMS)
def test_every_page_run_on_its_own_asks_for_the_password_first(app_db, page):
    # a page file run without streamlit_app.py (Streamlit's legacy pages mode on a fresh server)
    at = AppTest.from_file(f"../pages/{page}.py", default_timeout=TIMEOUT)
    at.secrets["password"] = "s3cret"
    at.query_params["model"] = "osnet"
    at.query_params["image"] = "5"
    at.run()
    no_errors(at)
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.metric and not at.dataframe and not at.image and not at.selectbox and not at.sidebar.selectbox


def test_compare_page_ranks_and_shows_one_image_under_every_model(app_db):
    at = run_page("compare", image="12")
    no_errors(at)
    table = at.dataframe[0].value
    assert table["rank_groups"].iloc[0] == 1 and table["rank_groups"].is_monotonic_increasing
    same = table.loc[table["rank_neighbours"] == 1, "model"]
    assert f"Best for finding the same vehicle: {' and '.join(same)}" in at.success[0].value
    assert f"Most interpretable groups: {table['model'].iloc[0]}" in at.success[1].value
    assert len(at.dataframe) == 2  # models, algorithm runs
    assert at.text_input[0].value == "12"
    assert len(images(at)) == 1 + 6 * 6  # the query, six neighbours under each of six models
    at.text_input[0].input("40").run()
    assert at.query_params["image"] == "40"



def test_compare_measure_travels_in_the_link(app_db):
    import json

    def coloured_by(at):
        spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
        return spec["encoding"]["color"]["field"]

    at = run_page("compare", image="12", measure="nmi")
    no_errors(at)
    assert not at.warning and at.radio(key="agree_measure").value == "nmi" and coloured_by(at) == "nmi"
    at.radio(key="agree_measure").set_value("knn_overlap").run()
    assert at.query_params["measure"] == "knn_overlap" and coloured_by(at) == "knn_overlap"
    at.radio(key="agree_measure").set_value("ari").run()  # the default leaves the link short
    assert "measure" not in at.query_params and coloured_by(at) == "ari"
    bad = run_page("compare", image="12", measure="jaccard")
    no_errors(bad)
    assert "Ignored measure 'jaccard'" in bad.warning[0].value and "showing ari" in bad.warning[0].value
    assert bad.radio(key="agree_measure").value == "ari" and coloured_by(bad) == "ari"


@pytest.mark.parametrize("bad, says", [("x1", "nothing matches 'x1'"), ("10000000", "no image 10000000"), ("-5", "no image -5")])
def test_compare_page_bad_image_ids_get_a_message(app_db, bad, says):
    at = run_page("compare", image=bad)
    no_errors(at)
    assert says in at.warning[0].value
    assert not images(at) and len(at.dataframe) == 2  # the tables still show


def test_clusters_page_follows_the_algorithm(app_db):
    from lib.queries import Explorer

    ex = Explorer(app_db)
    try:
        stored = {a: ex.clusters("vdc_type", a) for a in ("hdbscan", "ward", "kmeans")}
    finally:
        ex.close()

    def shows_the_clusters_of(at, algo):
        """The cluster picker lists that algorithm's clusters with their sizes, the card its first one's size;
        only the default (KMeans) clustering's clusters can be named."""
        no_errors(at)
        assert at.sidebar.selectbox[1].value == algo
        want = [("noise" if c < 0 else str(c)) + f": {s:,} images" for c, s in zip(stored[algo]["cluster"],
                                                                                 stored[algo]["size"])]
        got = at.selectbox[0].options
        assert len(got) == len(want) and all(g.startswith(w + " (") for g, w in zip(got, want)), (algo, got, want)
        assert at.metric[0].label == "Images" and at.metric[0].value == f"{int(stored[algo]['size'].iloc[0]):,}"
        assert ("Name of this cluster" in [t.label for t in at.text_input]) == (algo == "kmeans")

    at = run_page("clusters", model="vdc_type", algo="hdbscan")
    shows_the_clusters_of(at, "hdbscan")
    at.sidebar.selectbox[1].set_value("ward").run()
    assert at.query_params["algo"] == "ward"
    shows_the_clusters_of(at, "ward")
    at = run_page("clusters", model="vdc_type", algo="nonsense")
    assert "Ignored algorithm for vdc_type 'nonsense'" in at.sidebar.warning[0].value
    shows_the_clusters_of(at, "kmeans")


def test_the_app_imports_no_fitting_library(app_db):
    """Serving every page loads neither scikit-learn nor numba (pynndescent): they are the loader's, and
    would cost a served app ~90 MB of its 700 MB (issue 15). Run in a fresh interpreter, since this one
    has imported everything."""
    import os
    import subprocess
    import sys

    from tests.browser import ROOT

    script = """if True:
        import sys
        from streamlit.testing.v1 import AppTest
        for page in sys.argv[2:]:
            at = AppTest.from_file(f"{sys.argv[1]}/pages/{page}.py", default_timeout=300).run()
            assert not at.exception, (page, [e.message for e in at.exception])
        print(sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "numba", "pynndescent", "openTSNE"}))
        """
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), *PAGES], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, env=dict(os.environ, VEHICLE_DB=str(app_db)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
