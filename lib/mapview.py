"""The 2-D map at any size: a view (zoomed by bounds), density over every image, a drawn sample, colours.

A browser scatter stays usable to some 10,000 points, and the map holds every
image (414,575 at full scale), so a view is drawn as a density grid counted
in DuckDB over *all* images in its bounds, plus a sample of points on top
(every cluster kept). Zooming is a new view with narrower bounds: the
sample is drawn again inside them, so detail grows as one zooms in. A region
(a rectangle the user drags) is also queried from all rows: :func:`region`.

Bounds travel in links as text, ``x0,x1,y0,y1`` (:func:`parse_bounds`).
"""
from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np

from lib.queries import DEFAULT_ALGORITHM

DRAWN = 6000  # points sent to the browser per view
MIN_PER_CLUSTER = 30  # a small cluster stays visible in the sample
GRID = 70  # density cells per side
# Tableau's 10 colours up to 10 clusters; its 20 are light/dark pairs too close to tell apart (ΔE 12.6)
TABLEAU10 = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
             "#9c755f", "#bab0ac")
MAX_COLOURS = 40  # past this, the smallest clusters share one grey (a person cannot tell 60 hues apart)
OTHER_COLOUR = "#c8c8c8"
NOISE_COLOUR = "#8a8a8a"


@dataclass(frozen=True)
class Bounds:
    """A rectangle of the map: ``x0 <= x <= x1``, ``y0 <= y <= y1``."""

    x0: float
    x1: float
    y0: float
    y1: float

    def text(self):
        """The bounds as a link writes them (4 significant digits: a map unit is far above that)."""
        return ",".join(f"{v:.4g}" for v in (self.x0, self.x1, self.y0, self.y1))

    def contains(self, x, y):
        """Whether the point ``(x, y)`` lies inside (edges included)."""
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def covers(self, other):
        """Whether every point of ``other`` lies inside."""
        return self.contains(other.x0, other.y0) and self.contains(other.x1, other.y1)

    def sql(self):
        return "x BETWEEN ? AND ? AND y BETWEEN ? AND ?", [self.x0, self.x1, self.y0, self.y1]


def parse_bounds(text):
    """``"x0,x1,y0,y1"`` (any order within a pair) -> :class:`Bounds`.

    Raises
    ------
    ValueError
        With a message for people when the text is not four finite numbers
        or the rectangle has no area.
    """
    parts = str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"'{text}' is not four numbers x0,x1,y0,y1")
    x0, x1, y0, y1 = values
    if x0 == x1 or y0 == y1:
        raise ValueError(f"'{text}' is a rectangle without area")
    return Bounds(min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1))


def from_selection(sel):
    """An Altair interval selection (``{"x": [a, b], "y": [c, d]}``) -> :class:`Bounds`, or None."""
    try:
        return parse_bounds(",".join(str(v) for v in (*sel["x"], *sel["y"])))
    except (KeyError, TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=32)  # a build never changes; every rerun of a page asks again
def extent(ex, model):
    """The bounds of the whole map of ``model``."""
    x0, x1, y0, y1 = ex.rows("SELECT min(x), max(x), min(y), max(y) FROM map WHERE model = ?", [model])[0]
    return Bounds(float(x0), float(x1), float(y0), float(y1))


def _in(bounds):
    return ("", []) if bounds is None else (" AND " + bounds.sql()[0], bounds.sql()[1])


@functools.lru_cache(maxsize=32)  # a build never changes; every rerun of a page asks again
def points(ex, model, bounds=None, n=DRAWN, algorithm=DEFAULT_ALGORITHM, seed=0):
    """A sample of the map inside ``bounds`` for drawing; every cluster there keeps some points.

    Each cluster gets its share of ``n`` by its size in the view, at least
    :data:`MIN_PER_CLUSTER`; the same images are drawn for the same view.
    The frame is cached and shared: add columns to a copy.
    """
    cond, params = _in(bounds)
    return ex.df(f"""
        WITH m AS (
            SELECT image_id, x, y, cluster, count(*) OVER (PARTITION BY cluster) AS csize,
                   count(*) OVER () AS total,
                   row_number() OVER (PARTITION BY cluster ORDER BY hash(image_id + ?)) AS r
            FROM map JOIN algorithm_assignments USING (model, image_id)
            WHERE model = ? AND algorithm = ?{cond})
        SELECT image_id, x, y, cluster FROM m
        WHERE r <= greatest(?, ceil(? * csize / total))
        ORDER BY image_id""", [int(seed), model, algorithm, *params, MIN_PER_CLUSTER, int(n)])


@functools.lru_cache(maxsize=32)  # a build never changes; every rerun of a page asks again
def density(ex, model, bounds, cells=GRID):
    """Images per cell of a ``cells`` × ``cells`` grid over ``bounds``, counted over every image.

    Returns a frame of ``x0, x1, y0, y1, images`` for the cells that hold any.
    """
    wx, wy = (bounds.x1 - bounds.x0) / cells, (bounds.y1 - bounds.y0) / cells
    cond, params = _in(bounds)
    grid = ex.df(f"""
        SELECT least(floor((x - ?) / ?), ? - 1)::INTEGER AS i, least(floor((y - ?) / ?), ? - 1)::INTEGER AS j,
               count(*) AS images
        FROM map WHERE model = ?{cond} GROUP BY i, j""",
                 [bounds.x0, wx, cells, bounds.y0, wy, cells, model, *params])
    grid["x0"] = bounds.x0 + grid["i"] * wx
    grid["x1"] = grid["x0"] + wx
    grid["y0"] = bounds.y0 + grid["j"] * wy
    grid["y1"] = grid["y0"] + wy
    return grid[["x0", "x1", "y0", "y1", "images"]]


def count(ex, model, bounds=None):
    """How many images lie inside ``bounds`` (all of the map when None)."""
    cond, params = _in(bounds)
    return int(ex.rows(f"SELECT count(*) FROM map WHERE model = ?{cond}", [model, *params])[0][0])


def region(ex, model, bounds, limit=24, algorithm=DEFAULT_ALGORITHM):
    """Images inside a rectangle, from every row: total, count per cluster, a sample of ``limit``."""
    cond, params = _in(bounds)
    base = f"""FROM map JOIN algorithm_assignments USING (model, image_id)
               WHERE model = ? AND algorithm = ?{cond}"""
    per_cluster = ex.df(f"SELECT cluster, count(*) AS images {base} GROUP BY cluster ORDER BY images DESC, cluster",
                        [model, algorithm, *params])
    sample = ex.df(f"SELECT image_id, cluster {base} ORDER BY hash(image_id), image_id LIMIT ?",
                   [model, algorithm, *params, int(limit)])
    return int(per_cluster["images"].sum()) if len(per_cluster) else 0, per_cluster, sample


def locate(ex, model, image_id):
    """``(x, y)`` of one image on ``model``'s map, or None when the map has no such image."""
    rows = ex.rows("SELECT x, y FROM map WHERE model = ? AND image_id = ?", [model, int(image_id)])
    return (float(rows[0][0]), float(rows[0][1])) if rows else None


def zoom_around(bounds, x, y, factor=0.25):
    """Bounds ``factor`` as wide and high as ``bounds``, centred on ``(x, y)``."""
    hw, hh = (bounds.x1 - bounds.x0) * factor / 2, (bounds.y1 - bounds.y0) * factor / 2
    return Bounds(x - hw, x + hw, y - hh, y + hh)


def pan(bounds, dx, dy):
    """``bounds`` moved by ``dx`` of its width and ``dy`` of its height (the same size)."""
    w, h = bounds.x1 - bounds.x0, bounds.y1 - bounds.y0
    return Bounds(bounds.x0 + dx * w, bounds.x1 + dx * w, bounds.y0 + dy * h, bounds.y1 + dy * h)


def distinct_colours(n):
    """``n`` colours far apart to the eye, for more clusters than Tableau's 10.

    Greedy farthest-point picks in CIELAB from a grid of saturated hues at
    four lightness levels (no greys: those mean noise and "other"); the
    first is Tableau's blue. Deterministic; the test checks the distances.
    """
    from lib.images import srgb_to_lab

    grid = [colorsys.hls_to_rgb(h / 48, light, sat) for h in range(48)
            for light in (0.3, 0.42, 0.55, 0.68) for sat in (0.65, 0.95)]
    rgb = np.round(np.array([(0.306, 0.475, 0.655)] + grid) * 255)
    lab = srgb_to_lab(rgb)
    chosen = [0]
    nearest = np.linalg.norm(lab - lab[0], axis=1)
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[pick], axis=1))
    return ["#%02x%02x%02x" % tuple(int(v) for v in rgb[i]) for i in chosen]


def cluster_colours(sizes):
    """Colour per cluster: ``{cluster: "#rrggbb"}`` from ``{cluster: size}``.

    Up to 10 clusters Tableau's palette (by cluster number, as legends read);
    up to :data:`MAX_COLOURS` generated distinct colours; past that the
    largest ``MAX_COLOURS - 1`` keep a colour and the rest share one grey.
    Noise (-1) is dark grey.
    """
    real = sorted(c for c in sizes if c >= 0)
    colours = {-1: NOISE_COLOUR} if -1 in sizes else {}
    if len(real) <= len(TABLEAU10):
        colours.update(zip(real, TABLEAU10))
        return colours
    if len(real) <= MAX_COLOURS:
        colours.update(zip(real, distinct_colours(len(real))))
        return colours
    kept = sorted(sorted(real, key=lambda c: (-sizes[c], c))[:MAX_COLOURS - 1])
    colours.update(zip(kept, distinct_colours(len(kept))))
    colours.update({c: OTHER_COLOUR for c in real if c not in colours})
    return colours
