"""The map at any size: bounds in links, density and regions over every row, a sample per view, colours."""
import numpy as np
import pytest

from lib import images, mapview
from lib.queries import Explorer


@pytest.fixture(scope="module")
def ex(demo_db):
    return Explorer(demo_db[0])


@pytest.fixture(scope="module")
def whole_map(ex):
    """The stored map of one model with its clusters, read in full (the exact answer to compare against)."""
    return ex.df("""SELECT image_id, x, y, cluster FROM map JOIN algorithm_assignments USING (model, image_id)
                    WHERE model = 'osnet' AND algorithm = 'kmeans'""")


def test_bounds_read_from_links_and_written_back():
    b = mapview.parse_bounds("3,-1.5,7,2")
    assert (b.x0, b.x1, b.y0, b.y1) == (-1.5, 3.0, 2.0, 7.0)  # either order within a pair
    assert mapview.parse_bounds(b.text()) == b
    assert mapview.parse_bounds(mapview.Bounds(0.123456, 1, 2, 3).text()).x0 == pytest.approx(0.1235)
    for bad, says in [("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"), ("1,2,nan,4", "four numbers"),
                      ("1,1,2,3", "without area"), ("", "four numbers")]:
        with pytest.raises(ValueError, match=says):
            mapview.parse_bounds(bad)
    assert mapview.from_selection({"x": [2, 1], "y": [0, 5]}) == mapview.Bounds(1, 2, 0, 5)
    assert mapview.from_selection({}) is None and mapview.from_selection({"x": [1, 1], "y": [0, 1]}) is None


def middle(whole_map):
    """The central quarter of the map's extent: a zoomed view."""
    x0, x1 = np.quantile(whole_map.x, [0.25, 0.75])
    y0, y1 = np.quantile(whole_map.y, [0.25, 0.75])
    return mapview.Bounds(float(x0), float(x1), float(y0), float(y1))


def inside(df, b):
    return df[(df.x >= b.x0) & (df.x <= b.x1) & (df.y >= b.y0) & (df.y <= b.y1)]


def test_density_counts_every_image_of_the_view_once(ex, whole_map):
    for b in (mapview.extent(ex, "osnet"), middle(whole_map)):
        grid = mapview.density(ex, "osnet", b, cells=20)
        assert grid["images"].sum() == len(inside(whole_map, b)) == mapview.count(ex, "osnet", b)
        assert len(grid) > 20  # spread over many cells, not one
        assert (grid.x0 >= b.x0 - 1e-6).all() and (grid.x1 <= b.x1 + 1e-6).all()
        assert (grid.y0 >= b.y0 - 1e-6).all() and (grid.y1 <= b.y1 + 1e-6).all()
    # the cell of each point: recount one cell exactly
    b = mapview.extent(ex, "osnet")
    grid = mapview.density(ex, "osnet", b, cells=20)
    top = grid.sort_values("images").iloc[-1]
    cell = whole_map[(whole_map.x >= top.x0) & (whole_map.x < top.x1 - 1e-9)
                     & (whole_map.y >= top.y0) & (whole_map.y < top.y1 - 1e-9)]
    assert abs(len(cell) - top["images"]) <= 2  # float32 points on a cell's edge may fall either side


def test_a_zoomed_view_draws_a_new_sample_inside_it_with_every_cluster(ex, whole_map):
    b = middle(whole_map)
    pts = mapview.points(ex, "osnet", b, n=400)
    want = inside(whole_map, b)
    assert len(want) > 400  # the test means something: the view holds more than is drawn
    assert len(pts) < len(want)
    assert set(pts.image_id) <= set(want.image_id)
    per = want.cluster.value_counts()
    drawn = pts.cluster.value_counts()
    for c, size in per.items():
        assert drawn.get(c, 0) >= min(size, mapview.MIN_PER_CLUSTER)
    whole = mapview.points(ex, "osnet", None, n=400)
    assert set(whole.cluster) == set(whole_map.cluster)
    assert not set(whole.image_id) <= set(want.image_id)  # the whole map's sample reaches outside the view
    assert mapview.points(ex, "osnet", b, n=400).equals(pts)  # same view, same points


def test_region_covers_every_row_not_the_drawn_sample(ex, whole_map):
    b = middle(whole_map)
    total, per_cluster, sample = mapview.region(ex, "osnet", b, limit=10)
    want = inside(whole_map, b)
    assert total == len(want)
    assert dict(zip(per_cluster.cluster, per_cluster.images)) == want.cluster.value_counts().to_dict()
    assert len(sample) == 10 and set(sample.image_id) <= set(want.image_id)


def test_locate_and_zoom_around(ex, whole_map):
    row = whole_map.iloc[7]
    x, y = mapview.locate(ex, "osnet", int(row.image_id))
    assert (x, y) == pytest.approx((row.x, row.y))
    assert mapview.locate(ex, "osnet", 10**8) is None
    z = mapview.zoom_around(mapview.Bounds(0, 10, 0, 20), 3, 4, factor=0.5)
    assert (z.x0, z.x1, z.y0, z.y1) == (0.5, 5.5, -1.0, 9.0)
    assert mapview.pan(mapview.Bounds(0, 10, 0, 20), 0.5, -0.5) == mapview.Bounds(5, 15, -10, 10)
    box = mapview.Bounds(0, 10, 0, 20)
    assert box.contains(10, 0) and not box.contains(10.1, 5)
    assert box.covers(mapview.Bounds(1, 9, 0, 20)) and not box.covers(mapview.Bounds(-1, 9, 0, 20))


TABLEAU20 = ["#" + h for h in "4c78a8 9ecae9 f58518 ffbf79 54a24b 88d27a b79a20 f2cf5b 439894 83bcb6 e45756 "
              "ff9d98 79706e bab0ac d67195 fcbfd2 b279a2 d6a5c9 9e765f d8b5a5".split()]


def lab(colours):
    return images.srgb_to_lab(np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in colours], float))


def min_distance(colours):
    d = np.linalg.norm(lab(colours)[:, None] - lab(colours)[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min()


@pytest.mark.parametrize("k", [5, 10, 11, 22, 40])
def test_every_cluster_gets_a_colour_of_its_own(k):
    colours = mapview.cluster_colours({c: 100 + c for c in range(k)})
    assert len(colours) == k and len(set(colours.values())) == k
    # CIELAB distance; the palette before, Vega's tableau20, has light/dark pairs 12.6 apart and repeated
    # itself past 20 clusters: this check fails on it
    assert min_distance(list(colours.values())) >= 15
    assert min_distance(TABLEAU20) < 15


def test_past_the_limit_the_smallest_clusters_share_grey_and_noise_is_grey():
    sizes = {c: 1000 - c for c in range(60)} | {-1: 5000}
    colours = mapview.cluster_colours(sizes)
    coloured = [c for c in range(60) if colours[c] != mapview.OTHER_COLOUR]
    assert coloured == list(range(mapview.MAX_COLOURS - 1))  # the largest keep a colour
    assert len({colours[c] for c in coloured}) == len(coloured)
    assert colours[-1] == mapview.NOISE_COLOUR and mapview.NOISE_COLOUR not in [colours[c] for c in coloured]
