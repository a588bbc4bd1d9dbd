"""The Clusters map and its links, through AppTest: zoomed views, regions, a picked image, a region under review."""
import json

import numpy as np
import pyarrow as pa
import pytest

from lib import mapview
from lib.queries import Explorer

from .test_pages import no_errors, run_page


@pytest.fixture()
def ex(app_db):
    return Explorer(app_db)


def quarter(ex, model="osnet"):
    """The central quarter of a model's map (by the quartiles of its points): holds many images, not all."""
    xy = ex.df("SELECT x, y FROM map WHERE model = ?", [model])
    x0, x1 = np.quantile(xy.x, [0.25, 0.75])
    y0, y1 = np.quantile(xy.y, [0.25, 0.75])
    return mapview.Bounds(float(x0), float(x1), float(y0), float(y1))


def chart_layers(at):
    """The map's layers: (mark spec, data frame) per layer, as the browser receives them."""
    proto = at.get("vega_lite_chart")[0].proto
    frames = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in proto.datasets}
    return [(layer["mark"], frames[layer["data"]["name"]]) for layer in json.loads(proto.spec)["layer"]]


def test_a_zoomed_view_counts_every_image_in_it_and_draws_only_those(ex):
    view = quarter(ex)
    at = run_page("clusters", model="osnet", view=view.text())
    no_errors(at)
    view = mapview.parse_bounds(view.text())  # as the link holds it
    n = mapview.count(ex, "osnet", view)
    assert 0 < n < ex.n_images
    assert f"{n:,} images in this view (zoomed; {ex.n_images:,} in all)" in at.caption[0].value
    (_, density), (_, points) = chart_layers(at)[:2]
    assert density["images"].sum() == n  # the shading counts every image of the view
    assert points.x.between(view.x0, view.x1).all() and points.y.between(view.y0, view.y1).all()
    assert at.query_params["view"] == view.text()
    right = next(b for b in at.button if b.label == "→ Right").click().run()  # pan: the same size, moved
    moved = mapview.parse_bounds(right.query_params["view"])
    assert moved.x0 == pytest.approx((view.x0 + view.x1) / 2, rel=1e-3) and (moved.y0, moved.y1) == (view.y0, view.y1)
    assert chart_layers(right)[0][1]["images"].sum() == mapview.count(ex, "osnet", moved)
    whole = run_page("clusters", model="osnet")
    assert chart_layers(whole)[0][1]["images"].sum() == ex.n_images


def test_a_region_in_the_link_lists_its_images_beside_the_map_and_opens_them_for_review(ex):
    region = mapview.parse_bounds(quarter(ex).text())
    at = run_page("clusters", model="osnet", region=region.text())
    no_errors(at)
    total = mapview.count(ex, "osnet", region)
    said = [m.value for m in at.markdown]
    assert f"**Selected region: {total:,} images**" in said[0]
    shown = [int(i.captions[0].split(" ")[0][1:]) for i in at.image[:8]]
    xy = ex.df("SELECT image_id, x, y FROM map WHERE model = 'osnet' AND image_id IN (SELECT unnest(?))", [shown])
    assert len(xy) == 8 and xy.x.between(region.x0, region.x1).all() and xy.y.between(region.y0, region.y1).all()
    link = f"/outliers?model=consensus&map=osnet&region={region.text()}&flagged=0"
    assert f"[Review these {total:,} images in Outliers →]({link})" in said

    review = run_page("outliers", model="consensus", map="osnet", region=region.text(), flagged="0")
    no_errors(review)
    assert f"Only the {total:,} images in a region of osnet's map" in review.info[0].value
    entries = ex.outlier_entries("consensus", region=("osnet", region))
    assert len(entries) > 24  # more than a page, fewer than all
    assert len(entries) < len(ex.outlier_entries("consensus"))
    assert f"of {len(entries):,} ranked entries" in " ".join(m.value for m in review.markdown)
    inside = set(ex.df("SELECT image_id FROM map WHERE model = 'osnet' AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?",
                       [region.x0, region.x1, region.y0, region.y1]).image_id)
    assert set(entries.image_id) <= inside
    assert review.query_params["region"] == region.text() and review.query_params["map"] == "osnet"
    other = run_page("outliers", model="consensus", map="nonsense", region=region.text())
    assert "map 'nonsense' is not a model here" in other.warning[0].value
    assert "region" not in other.query_params


def test_a_picked_image_is_marked_on_the_map_of_every_model_and_opens_its_cluster(ex):
    for model in ("osnet", "vdc_type", "vdc_color"):
        at = run_page("clusters", model=model, image="5")
        no_errors(at)
        own = ex.assignment(model, 5)
        assert at.selectbox[0].value == own  # the picker opens on the image's cluster
        assert at.markdown[0].value.startswith(f"**Image #5** · vehicle `{ex.image(5)['vehicle_id']}` · "
                                               f"cluster {own} (shown below)")
        mark, where = chart_layers(at)[-1]
        assert mark["size"] > 100 and where.image_id.tolist() == [5]
        assert (where.x[0], where.y[0]) == pytest.approx(mapview.locate(ex, model, 5))
    # a cluster in the link wins; the panel offers the image's own
    own = ex.assignment("osnet", 5)
    other = next(c for c in ex.clusters("osnet").cluster if c != own)
    at = run_page("clusters", model="osnet", image="5", cluster=str(other))
    assert at.selectbox[0].value == other
    show = next(b for b in at.button if b.label == f"Show cluster {own}")
    at = show.click().run()
    assert at.selectbox[0].value == own and at.query_params["cluster"] == str(own)


def test_more_clusters_than_a_palette_still_get_colours_of_their_own(ex):
    at = run_page("clusters", model="osnet")
    points = chart_layers(at)[1][1]
    assert (points.groupby("cluster")["colour"].nunique() == 1).all()  # one colour per cluster
    sizes = ex.clusters("osnet").set_index("cluster")["size"]
    assert len(sizes) > mapview.MAX_COLOURS  # the demo's osnet: more clusters than colours
    coloured = points[points.colour != mapview.OTHER_COLOUR]
    assert coloured.groupby("colour")["cluster"].nunique().max() == 1  # no colour shared but "other"
    assert coloured.cluster.nunique() == mapview.MAX_COLOURS - 1
    grey = set(points[points.colour == mapview.OTHER_COLOUR].cluster)
    assert sizes[list(grey)].max() <= sizes[coloured.cluster.unique()].min()  # the smallest go grey
    assert f"the {len(sizes) - mapview.MAX_COLOURS + 1} smallest are drawn in light grey" in at.caption[0].value
    few = run_page("clusters", model="vdc_color")
    assert "light grey" not in few.caption[0].value
    assert chart_layers(few)[1][1].groupby("colour")["cluster"].nunique().max() == 1


def test_similar_links_its_query_to_the_map(app_db):
    at = run_page("similar", model="osnet", image="5")
    no_errors(at)
    assert "[on the map →](/clusters?model=osnet&algo=kmeans&image=5)" in " ".join(m.value for m in at.markdown)
