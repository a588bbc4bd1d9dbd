"""One search box for every identifier a user holds (lib.search), on the demo database."""
import pytest

from lib import search
from lib.queries import Explorer
from tests.test_pages import images, no_errors, run_page


@pytest.fixture(scope="module")
def ex(demo_db):
    e = Explorer(demo_db[0])
    yield e
    e.close()


@pytest.fixture(scope="module")
def car(ex):
    """A vehicle with several photos, one of its images and that image's path."""
    vid, n = ex.rows("""SELECT vehicle_id, count(*) FROM images GROUP BY 1 HAVING count(*) >= 3
                        ORDER BY vehicle_id LIMIT 1""")[0]
    image_id = ex.rows("SELECT min(image_id) FROM images WHERE vehicle_id = ?", [vid])[0][0]
    return vid, n, image_id, ex.image(image_id)["path"]


def test_every_identifier_finds_its_images(ex, car):
    vid, n, image_id, path = car
    name = path.rsplit("/", 1)[1]
    for text in (str(image_id), f"#{image_id}", f" id {image_id} ", path, name, name.rsplit(".", 1)[0],
                 f"/kaggle/input/intellivision-case/raw_data/{path}",  # as images_paths.csv writes it
                 "D:\\copies\\raw_data\\" + path.replace("/", "\\")):  # a Windows copy
        found = search.find(ex, text)
        assert (found.kind, found.image_ids, found.vehicle_id) == ("image", [image_id], vid), text
    for text in (f"v{vid}", f"vehicle {vid}", f"V:{int(vid)}"):  # the folder's leading zeros are optional
        found = search.find(ex, text)
        assert found.kind == "vehicle" and found.vehicle_id == vid, text
        assert found.image_ids == sorted(i for (i,) in ex.rows("SELECT image_id FROM images WHERE vehicle_id = ?",
                                                                [vid]))
        assert len(found.image_ids) == n and f"{n} photos" in found.message


def test_ambiguous_and_missing_text_says_so(ex, car):
    vid, n, _, path = car
    folder = path.rsplit("/", 1)[0]  # "4/42566": every photo of the vehicle
    found = search.find(ex, folder)
    assert found.kind == "matches" and len(found.image_ids) == n and "pick one" in found.message
    found = search.find(ex, ".jpg", limit=10)
    assert found.kind == "matches" and len(found.image_ids) == 10 and found.message.startswith("more than 10")
    for text, says in (("zzz-no-such", "nothing matches"), (str(ex.n_images), "no image"), ("-4", "no image -4"),
                       ("v99999999", "no vehicle"), ("", "type an image ID")):
        found = search.find(ex, text)
        assert found.kind == "none" and not found.image_ids and says in found.message, text


def test_a_number_that_is_also_a_vehicle_offers_both(ex, car):
    vid = car[0]
    as_number = str(int(vid))
    if int(as_number) < ex.n_images:  # an image ID too: the image, and the vehicle offered
        found = search.find(ex, as_number)
        assert found.kind == "image" and found.image_ids == [int(as_number)] and found.also == f"v{vid}"
    else:  # past the last image: the vehicle
        assert search.find(ex, as_number).vehicle_id == vid
    assert search.find(ex, f"#{as_number}").kind in ("image", "none")  # '#' forces an image ID


def test_vehicle_clusters_count_where_its_photos_fall(ex, car):
    vid, n = car[:2]
    t = search.vehicle_clusters(ex, vid).set_index("model")
    assert set(t.index) == set(ex.model_names()) and (t.photos == n).all()
    for model, row in t.iterrows():
        got = ex.df("""SELECT cluster, count(*) AS c FROM assignments JOIN images USING (image_id)
                       WHERE model = ? AND vehicle_id = ? GROUP BY 1""", [model, vid])
        assert row.clusters == len(got) and row.largest_share == pytest.approx(got.c.max() / n)


@pytest.mark.parametrize("page", ["similar", "compare"])
def test_the_pages_search_by_vehicle_and_path_from_the_url(app_db, page, ex, car):
    vid, n, image_id, path = car
    at = run_page(page, image=f"v{vid}")
    no_errors(at)
    assert any(f"vehicle {vid}: {n} photos" in i.value for i in at.info)
    assert len(images(at)) == n  # its photos, and where they fall per model
    assert any(set(d.value.columns) >= {"model", "clusters", "largest_share"} for d in at.dataframe)
    next(b for b in at.button if b.label == "open").click().run()  # "open" the first photo
    no_errors(at)
    assert at.query_params["image"] == str(image_id)
    assert f"query #{image_id}" in at.image[0].captions[0] or page == "compare"
    at = run_page(page, image=f"/mnt/elsewhere/raw_data/{path}")
    no_errors(at)
    assert not at.warning and at.query_params["image"] == f"/mnt/elsewhere/raw_data/{path}"
