"""Every page under Streamlit's AppTest, against the demo database."""
import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120


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
    assert "Chosen **k =" in at.markdown[0].value
    at.sidebar.selectbox[0].set_value("osnet").run()
    assert at.title[0].value == "Metrics: osnet"
    assert at.query_params["model"] == "osnet"


def test_clusters_page_shows_a_gallery(app_db):
    at = run_page("clusters", model="vdc_type", cluster="1")
    no_errors(at)
    assert at.selectbox[0].value == 1
    assert len(images(at)) == 12 + 6 + 12  # nearest the centre, on the boundary, random
    assert [h.value for h in at.subheader][:3] == ["Cluster 1: nearest the centre", "Cluster 1: on the boundary",
                                                   "Cluster 1: random images"]


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


@pytest.mark.parametrize("bad, says", [("abc", "whole number"), ("99999999", "no image 99999999"), ("-1", "no image -1")])
def test_similar_page_bad_ids_get_a_message(app_db, bad, says):
    at = run_page("similar", image=bad)
    no_errors(at)
    assert says in at.warning[0].value
    assert not images(at)


def test_outliers_page_pages_through_the_ranking(app_db):
    at = run_page("outliers", model="consensus", page="2")
    no_errors(at)
    assert at.number_input[0].value == 2
    assert "Ranks 25–48" in at.markdown[0].value
    assert len(images(at)) == 24
    at = run_page("outliers", page="not-a-page")
    no_errors(at)
    assert at.number_input[0].value == 1


def test_entry_point_navigates(app_db):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=TIMEOUT).run()
    no_errors(at)
    assert at.title[0].value == "Vehicle cluster explorer"


def test_first_start_builds_the_demo_database(tmp_path, monkeypatch):
    import ui
    from lib import pipeline

    from .tiny import TINY_CONFIG

    db = tmp_path / "fresh.duckdb"
    monkeypatch.setattr(ui, "DB_PATH", db)
    monkeypatch.setattr(ui, "DEMO_DIR", tmp_path / "demo")
    monkeypatch.setattr(ui, "DEMO_VEHICLES", 30)
    real_load = pipeline.load
    monkeypatch.setattr(pipeline, "load", lambda d, path, config=None, progress=None:
                        real_load(d, path, TINY_CONFIG, progress))  # fewer k and map steps
    at = AppTest.from_file("../streamlit_app.py", default_timeout=600).run()
    no_errors(at)
    assert db.is_symlink() and (tmp_path / "demo" / "images_paths.csv").exists()
    at.run()  # the rerun after the build shows the app
    no_errors(at)
    assert at.title[0].value == "Vehicle cluster explorer"
    assert at.metric[2].value == "6"


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


def test_compare_page_ranks_and_shows_one_image_under_every_model(app_db):
    at = run_page("compare", image="12")
    no_errors(at)
    table = at.dataframe[0].value
    assert list(table["rank"]) == list(range(1, 7))
    assert f"Recommended: {table['model'].iloc[0]}" in at.success[0].value
    assert len(at.dataframe) == 2  # models, algorithm runs
    assert at.text_input[0].value == "12"
    assert len(images(at)) == 1 + 6 * 6  # the query, six neighbours under each of six models
    at.text_input[0].input("40").run()
    assert at.query_params["image"] == "40"


@pytest.mark.parametrize("bad, says", [("x1", "whole number"), ("10000000", "no image 10000000"), ("-5", "no image -5")])
def test_compare_page_bad_image_ids_get_a_message(app_db, bad, says):
    at = run_page("compare", image=bad)
    no_errors(at)
    assert says in at.warning[0].value
    assert not images(at) and len(at.dataframe) == 2  # the tables still show


def test_clusters_page_follows_the_algorithm(app_db):
    at = run_page("clusters", model="vdc_type", algo="hdbscan")
    no_errors(at)
    assert at.sidebar.selectbox[1].value == "hdbscan"
    labels = at.selectbox[0].options
    at.sidebar.selectbox[1].set_value("ward").run()
    no_errors(at)
    assert at.query_params["algo"] == "ward"
    assert [m.label for m in at.metric][:3] == ["Size", "Colour", "Vehicles"]
    at = run_page("clusters", model="vdc_type", algo="nonsense")
    no_errors(at)
    assert "No algorithm 'nonsense'" in at.sidebar.warning[0].value
    assert at.sidebar.selectbox[1].value == "kmeans"
    assert labels  # hdbscan had clusters to list
