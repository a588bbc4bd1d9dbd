"""Read side: every question the app asks of a build, as one method each.

Usable from a notebook::

    from lib.queries import Explorer
    ex = Explorer("data/vehicles.duckdb")
    ex.similar("osnet", 123)

All SQL is parameterised. The connection is read-only and each call takes its
own cursor, so one Explorer can serve many threads.
"""
from __future__ import annotations

import functools
import json
import os
import re

import numpy as np
import pandas as pd

from . import images, outliers, store
from .algorithms import DEFAULT as DEFAULT_ALGORITHM


_NO_CLUSTER = np.iinfo(np.int32).min  # an image without a row in algorithm_assignments
_INT = re.compile(r"\s*\+?([0-9]{1,18})\s*")


def parse_int(value):
    """A non-negative whole number written in ASCII digits (URL or text box), or None.

    Stricter than ``int()``, which also takes ``'1_000'``, ``'٣'`` and 4,000-digit
    strings; ``str.isdigit`` accepts ``'²'``, which ``int()`` then refuses.
    """
    m = _INT.fullmatch(value) if isinstance(value, str) else None
    return int(m.group(1)) if m else None


def int_param(value, lo, hi, default):
    """An integer query parameter within ``[lo, hi]``, else ``default``."""
    n = parse_int(value)
    return n if n is not None and lo <= n <= hi else default


class Explorer:
    """Queries on one complete build (the one ``db_path`` points to when opened)."""

    def __init__(self, db_path):
        self.db_path = str(db_path)
        self.build_path = str(store.resolve(db_path) or db_path)
        self.con = store.connect(db_path)
        self.schema_version = int(self.scalar("SELECT max(value) FROM meta WHERE key = 'schema_version'") or 1)
        if self.schema_version != store.SCHEMA_VERSION:
            return  # an older build: the app says so (ui.explorer) and reads nothing else
        self._models = self.df("SELECT * FROM models ORDER BY model")
        self.n_images = self.scalar("SELECT count(*) FROM images")

    def close(self):
        self.con.close()

    # plumbing
    def df(self, sql, params=None):
        return self.con.cursor().execute(sql, params or []).df()

    def rows(self, sql, params=None):
        return self.con.cursor().execute(sql, params or []).fetchall()

    def scalar(self, sql, params=None):
        row = self.con.cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None

    # dataset and models
    def summary(self):
        """Counts and load facts for the overview."""
        meta = dict(self.rows("SELECT key, value FROM meta"))
        return {
            "images": self.n_images,
            "vehicles": self.scalar("SELECT count(DISTINCT vehicle_id) FROM images"),
            "models": len(self._models),
            "built_at": meta.get("built_at"),
            "load_seconds": float(meta.get("load_seconds", "nan")),
            "image_status": json.loads(meta.get("image_status", "{}")),
            "build": os.path.basename(self.build_path),  # a file name, never the server's paths
            "duplicate_images": self.scalar("SELECT count(*) FROM duplicate_groups"),
            "duplicate_groups": self.scalar("SELECT count(DISTINCT group_id) FROM duplicate_groups"),
        }

    def models(self):
        """One row per model: dims, PCA dims, chosen k, scores (a DataFrame)."""
        return self._models.copy()

    def model_names(self):
        return list(self._models["model"])

    def check_model(self, model):
        """Return ``model`` if this build has it, else raise ValueError."""
        if model not in self.model_names():
            raise ValueError(f"unknown model {model!r}; this database has: {', '.join(self.model_names())}")
        return model

    def check_image_id(self, value):
        """Parse an image ID from user input; ValueError with a friendly message if bad."""
        text = str(value).strip()
        image_id = parse_int(text)
        if image_id is None and text.startswith("-") and parse_int(text[1:]) is not None:
            raise ValueError(f"no image {text[:24]}: IDs run from 0 to {self.n_images - 1}")
        if image_id is None:
            raise ValueError(f"image ID must be a whole number, not {str(value)[:24]!r}")
        if not 0 <= image_id < self.n_images:
            raise ValueError(f"no image {image_id}: IDs run from 0 to {self.n_images - 1}")
        return image_id

    def algorithms(self, model):
        """Algorithms this build ran on ``model`` that gave an answer, the default first.

        A degenerate run (``algorithm_runs.degenerate``: all noise, one giant
        cluster...) is never offered; the default (KMeans) always is.
        """
        return [r[0] for r in self.rows("""SELECT algorithm FROM algorithm_runs
                                           WHERE model = ? AND (is_default OR degenerate IS NULL)
                                           ORDER BY NOT is_default, algorithm""", [model])]

    def algorithm_runs(self, model=None):
        """One row per (model, algorithm): k, clusters found, noise share, scores, seconds, params."""
        sql = "SELECT * FROM algorithm_runs"
        return self.df(sql + (" WHERE model = ?" if model else "") + " ORDER BY model, NOT is_default, algorithm",
                       [model] if model else [])

    def algorithm_sweep(self, model, algorithm):
        return self.df("""SELECT * EXCLUDE (model, algorithm) FROM algorithm_sweep
                          WHERE model = ? AND algorithm = ? ORDER BY value""", [model, algorithm])

    # comparing models
    def compare(self):
        """Every model and combination with its structure, evidence and both recommendations,
        the groups recommendation first (a model without structure has none: last)."""
        return self.df("""SELECT rank_groups, rank_neighbours, model, coalesce(parts, '') AS parts, metric,
                                 structure, chosen_k, gap_at_k, gap_se_at_k, k_note,
                                 same_vehicle_recall, vehicle_consistency, consistency_expected,
                                 consistency_kappa, stability_ari, color_nmi, silhouette, davies_bouldin,
                                 calinski_harabasz, map_knn_preservation, dim, pca_dim,
                                 rank_groups_reason, rank_neighbours_reason
                          FROM models ORDER BY rank_groups NULLS LAST, rank_neighbours, model""")

    def recommended(self, purpose):
        """The model a page should open on, and why in a few words.

        Parameters
        ----------
        purpose : {"neighbours", "groups"}
            Finding the same vehicle (``rank_neighbours``) or interpretable
            clusters (``rank_groups``; with no model ranked for groups, the
            neighbours' first).

        Returns
        -------
        (str, str) or (None, None)
            ``("osnet", "best at finding the same vehicle")``; (None, None) for
            a build without the ranks.
        """
        col = {"neighbours": "rank_neighbours", "groups": "rank_groups"}[purpose]
        cols = set(self._models.columns)
        if col not in cols:
            return None, None
        first = self._models[self._models[col] == 1]
        if len(first):
            what = "best at finding the same vehicle" if purpose == "neighbours" else "clearest groups"
            return str(first["model"].iloc[0]), what
        if purpose == "groups":
            model, _ = self.recommended("neighbours")
            return model, ("no model has cluster structure; best at finding the same vehicle"
                           if model else None)
        return None, None

    def agreement(self):
        """ARI, NMI and 10-NN overlap for every ordered pair of models."""
        return self.df("SELECT * FROM model_agreement ORDER BY model_a, model_b")

    def combination_parts(self, model):
        return self.df("SELECT part, position, weight FROM combination_parts WHERE model = ? ORDER BY position", [model])

    def k_scores(self, model):
        return self.df("SELECT * EXCLUDE (model) FROM k_scores WHERE model = ? ORDER BY k", [model])

    def pca_curve(self, model, max_components=None):
        sql = "SELECT component, ratio, cumulative FROM pca_variance WHERE model = ?"
        params = [model]
        if max_components:
            sql += " AND component <= ?"
            params.append(int(max_components))
        return self.df(sql + " ORDER BY component", params)

    def stages(self):
        return self.df("SELECT * FROM stages")

    # clusters and the map
    @property
    def build(self):
        """The build's file name: what cluster names and batches are recorded against."""
        return os.path.basename(self.build_path)

    def clusters(self, model, algorithm=DEFAULT_ALGORITHM):
        """Clusters of a model with size, share of all images, colour name and that colour's share (-1 = noise)."""
        return self.df("""SELECT cluster, size, size / sum(size) OVER () AS share, color_name, color_share
                          FROM algorithm_clusters WHERE model = ? AND algorithm = ? ORDER BY cluster""",
                       [model, algorithm])

    # a near-duplicate group is one tile: its representative, with ``copies`` = the group's size
    _ONE_PER_GROUP = """FROM algorithm_assignments a LEFT JOIN duplicate_groups g USING (image_id)
                        WHERE a.model = ? AND a.algorithm = ? AND a.cluster = ? AND coalesce(g.is_representative, true)"""

    def cluster_gallery(self, model, cluster, n=12, algorithm=DEFAULT_ALGORITHM):
        """Representative (nearest the centre) and random images of one cluster, a near-duplicate group once."""
        cols = "SELECT a.image_id, a.center_distance, coalesce(g.size, 1) AS copies"
        params = [model, algorithm, int(cluster), int(n)]
        rep = self.df(f"{cols} {self._ONE_PER_GROUP} ORDER BY a.center_distance, a.image_id LIMIT ?", params)
        rnd = self.df(f"{cols} {self._ONE_PER_GROUP} ORDER BY hash(a.image_id) LIMIT ?", params)
        return rep, rnd

    def cluster_boundary(self, model, cluster, n=12, algorithm=DEFAULT_ALGORITHM):
        """Images of a cluster closest to another cluster's centre (smallest margin first), a group once."""
        return self.df(f"""SELECT a.image_id, a.margin, coalesce(g.size, 1) AS copies {self._ONE_PER_GROUP}
                           AND a.margin IS NOT NULL ORDER BY a.margin, a.image_id LIMIT ?""",
                       [model, algorithm, int(cluster), int(n)])

    def cluster_vehicles(self, model, cluster, n=5, algorithm=DEFAULT_ALGORITHM):
        """The vehicles a cluster holds: how many, and the ``n`` with most photos in it.

        Returns
        -------
        total : int, distinct vehicles in the cluster
        top : DataFrame with vehicle_id, photos (in the cluster), of_all (that vehicle's photos)
        """
        top = self.df("""
            WITH c AS (SELECT i.vehicle_id, count(*) AS photos
                       FROM algorithm_assignments a JOIN images i USING (image_id)
                       WHERE a.model = ? AND a.algorithm = ? AND a.cluster = ? GROUP BY i.vehicle_id)
            SELECT c.vehicle_id, c.photos, count(*) OVER () AS total,
                   (SELECT count(*) FROM images j WHERE j.vehicle_id = c.vehicle_id) AS of_all
            FROM c ORDER BY c.photos DESC, c.vehicle_id LIMIT ?""", [model, algorithm, int(cluster), int(n)])
        total = int(top["total"].iloc[0]) if len(top) else 0
        return total, top.drop(columns="total")

    # images and neighbours
    def image(self, image_id):
        """Facts about one image, or None."""
        df = self.df("SELECT * FROM images WHERE image_id = ?", [int(image_id)])
        return None if df.empty else df.iloc[0].to_dict()

    def thumbnails(self, image_ids):
        """``{image_id: jpeg bytes}``, the placeholder for images without a thumbnail."""
        ids = [int(i) for i in image_ids]
        if not ids:
            return {}
        got = dict(self.rows("SELECT image_id, jpeg FROM thumbnails WHERE image_id IN (SELECT unnest(?))", [ids]))
        return {i: got.get(i) or images.placeholder() for i in ids}

    def similar(self, model, image_id, k=12, algorithm=DEFAULT_ALGORITHM, own_group=False, one_per_group=True):
        """Nearest neighbours of an image from the stored graph (rank 1 = nearest).

        Parameters
        ----------
        own_group : bool
            Also list the query's own near-duplicate frames (hidden by default:
            they are the same photo, not a similar car).
        one_per_group : bool
            A near-duplicate group appears once, at its nearest frame, with
            ``copies`` = its size. With both options off and on respectively
            this is the raw stored table.

        Returns
        -------
        DataFrame with ``rank, image_id, distance, copies, vehicle_id, cluster``
        """
        # one point query, then per-image arrays read once per build: joining the 20 rows to the
        # image, group and assignment tables in SQL scanned each of them (p95 13 ms at 414k images)
        rank, nb, dist = self.con.cursor().execute(
            "SELECT rank, neighbor_id, distance FROM neighbors WHERE model = ? AND image_id = ? ORDER BY rank",
            [model, int(image_id)]).fetchnumpy().values()
        group, size = self._groups
        own = (group[nb] == group[image_id]) & (group[nb] >= 0)
        cluster = self._clusters(model, algorithm)[nb]
        keep = (cluster != _NO_CLUSTER) & (own_group | ~own)
        if one_per_group:
            unit = np.where(own | (group[nb] < 0), -1 - nb.astype(np.int64), group[nb])
            kept = np.flatnonzero(keep)
            keep[:] = False
            keep[kept[np.unique(unit[kept], return_index=True)[1]]] = True  # rows are in rank order: the nearest
        sel = np.flatnonzero(keep)[:int(k)]
        ids = nb[sel]
        return pd.DataFrame({
            "rank": rank[sel], "image_id": ids, "distance": dist[sel],
            "copies": np.where(own[sel], 1, np.maximum(size[ids], 1)).astype(np.int32),
            "vehicle_id": self._vehicles.take(ids).to_numpy(zero_copy_only=False), "cluster": cluster[sel]})

    @functools.cached_property
    def _groups(self):
        """Per image: its near-duplicate group (-1 for none) and the group's size (0 for none)."""
        group, size = np.full(self.n_images, -1, np.int64), np.zeros(self.n_images, np.int32)
        g = self.con.cursor().execute("SELECT image_id, group_id, size FROM duplicate_groups").fetchnumpy()
        group[g["image_id"]], size[g["image_id"]] = g["group_id"], g["size"]
        return group, size

    @functools.cached_property
    def _vehicles(self):
        """Every image's vehicle ID, in image_id order (an Arrow array: ~4 MB at 414k images)."""
        return self.con.cursor().sql("SELECT vehicle_id FROM images ORDER BY image_id").to_arrow_table().column(0) \
            .combine_chunks()

    @functools.lru_cache(maxsize=16)  # a build never changes; a few models x algorithms at 1.6 MB each
    def _clusters(self, model, algorithm):
        """Every image's cluster under ``model`` and ``algorithm`` (:data:`_NO_CLUSTER` where it has none)."""
        out = np.full(self.n_images, _NO_CLUSTER, np.int32)
        a = self.con.cursor().execute("SELECT image_id, cluster FROM algorithm_assignments WHERE model = ? AND "
                                      "algorithm = ?", [model, algorithm]).fetchnumpy()
        out[a["image_id"]] = a["cluster"]
        return out

    def nearest_distances(self, model, bins=40):
        """Histogram of every image's distance to its nearest other image, and the near-duplicate threshold.

        Returns
        -------
        hist : DataFrame with ``start``, ``end``, ``images`` (equal-width bins from 0 to the 99.5th percentile;
            the last bin holds everything beyond)
        threshold : float, ``models.duplicate_threshold``
        """
        threshold = self.scalar("SELECT duplicate_threshold FROM models WHERE model = ?", [model])
        hist = self.df("""
            WITH d AS (SELECT distance FROM neighbors WHERE model = ? AND rank = 1),
            top AS (SELECT greatest(quantile_cont(distance, 0.995), 1e-9) AS hi FROM d)
            SELECT b * hi / ? AS start, (b + 1) * hi / ? AS "end", count(*) AS images
            FROM (SELECT least(floor(distance / hi * ?), ? - 1)::INTEGER AS b, hi FROM d, top)
            GROUP BY b, hi ORDER BY b""", [model, int(bins), int(bins), int(bins), int(bins)])
        return hist, threshold

    def duplicate_group(self, image_id):
        """The image's near-duplicate group: every member's image ID (just the image if it is in none)."""
        ids = [r[0] for r in self.rows("""SELECT image_id FROM duplicate_groups WHERE group_id =
                                          (SELECT group_id FROM duplicate_groups WHERE image_id = ?)
                                          ORDER BY image_id""", [int(image_id)])]
        return ids or [int(image_id)]

    def similar_exact(self, model, image_id, k=12):
        """Exact nearest neighbours computed in SQL on the stored reduced vectors."""
        table = store.vector_table(self.check_model(model))
        return self.df(f"""SELECT v.image_id, array_distance(v.vec, q.vec) AS distance
                           FROM "{table}" v, (SELECT vec FROM "{table}" WHERE image_id = ?) q
                           WHERE v.image_id <> ? ORDER BY distance, v.image_id LIMIT ?""",
                       [int(image_id), int(image_id), int(k)])

    def assignment(self, model, image_id, algorithm=DEFAULT_ALGORITHM):
        return self.scalar("SELECT cluster FROM algorithm_assignments WHERE model = ? AND algorithm = ? AND image_id = ?",
                           [model, algorithm, int(image_id)])

    # outliers
    def outliers(self, model, page=1, per_page=24, cluster_model=None, cluster=None, cause=None,
                 exclude_paths=None, flagged_only=False, region=None):
        """One page of the outlier ranking (rank 1 = most unusual) and the number of matching images.

        A near-duplicate group is one entry (its representative, ``copies`` = its size): the ranking
        counts it once.

        Parameters
        ----------
        model : str
            A model or ``'consensus'``: whose ranking.
        cluster_model, cluster : str, int, optional
            Only images in this cluster of ``cluster_model`` (default: ``model``).
        cause : str, optional
            Only images this detector (e.g. ``'lof'``, under any model for
            the consensus) or, for the consensus, this model put in its top 1%.
        exclude_paths : list of str, optional
            Leave these images out (e.g. the reviewed ones).
        flagged_only : bool
            Only the ranking's top :data:`lib.outliers.FLAG_SHARE` (1%) of entries.
        region : tuple, optional
            ``(model, lib.mapview.Bounds)``: only images inside this rectangle
            of that model's 2-D map (every image there, not a drawn sample).
        """
        page = max(1, int(page))
        base, params = self._outlier_filter(model, cluster_model, cluster, cause, exclude_paths, flagged_only,
                                            region)
        # one query for the page and the count; a page past the end needs a count of its own
        df = self.df(f"""SELECT o.rank, o.image_id, i.path, o.score, o.one_in, o.cause, o.flagged_by,
                                coalesce(g.size, 1) AS copies, i.vehicle_id, i.status,
                                count(*) OVER () AS total
                         {base} ORDER BY o.rank LIMIT ? OFFSET ?""",
                     params + [int(per_page), (page - 1) * int(per_page)])
        if len(df):
            total = int(df["total"].iloc[0])
        else:
            total = self.scalar(f"SELECT count(*) {base}", params) if page > 1 else 0
        return df.drop(columns="total"), total

    def outlier_entries(self, model, cluster_model=None, cluster=None, cause=None, exclude_paths=None,
                        flagged_only=False, ranks=(None, None), limit=None, region=None):
        """The entries of a filtered ranking (as :meth:`outliers` lists them), without paging.

        Parameters
        ----------
        ranks : (int or None, int or None)
            Only ranks from the first to the second, both included (None: no bound).
        limit : int, optional
            At most this many, from the top.

        Returns
        -------
        pandas.DataFrame
            ``rank, image_id, path``, best rank first.
        """
        base, params = self._outlier_filter(model, cluster_model, cluster, cause, exclude_paths, flagged_only,
                                            region)
        lo, hi = ranks
        sql = f"SELECT o.rank, o.image_id, i.path {base} AND o.rank BETWEEN ? AND ? ORDER BY o.rank"
        params = params + [int(lo if lo is not None else 0), int(hi if hi is not None else 2**62)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self.df(sql, params)

    def _outlier_filter(self, model, cluster_model, cluster, cause, exclude_paths, flagged_only, region=None):
        where, params = ["o.model = ?"], [model]
        join = ""
        if cluster is not None:
            join = "JOIN assignments a ON a.image_id = o.image_id AND a.model = ?"
            params.insert(0, cluster_model or model)
            where.append("a.cluster = ?")
            params.append(int(cluster))
        if cause:
            if model == "consensus" and cause not in self.model_names():
                where.append("""o.image_id IN (SELECT image_id FROM outliers WHERE model <> 'consensus'
                                AND list_contains(string_split(flagged_by, ','), ?))""")
            else:
                where.append("list_contains(string_split(o.flagged_by, ','), ?)")
            params.append(cause)
        if flagged_only:  # by rank, so that a page of flagged entries has no gaps in its ranks
            where.append("o.rank <= (SELECT ceil(max(rank) * ?) FROM outliers WHERE model = ?)")
            params += [outliers.FLAG_SHARE, model]
        if exclude_paths:
            where.append("i.path NOT IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(exclude_paths))
        if region is not None:  # (model, lib.mapview.Bounds): a rectangle of that model's map, every image in it
            region_model, bounds = region
            cond, values = bounds.sql()
            where.append(f"o.image_id IN (SELECT image_id FROM map WHERE model = ? AND {cond})")
            params += [region_model, *values]
        where.append("coalesce(g.is_representative, true)")  # a near-duplicate group is listed once
        base = (f"FROM outliers o JOIN images i ON i.image_id = o.image_id "
                f"LEFT JOIN duplicate_groups g ON g.image_id = o.image_id {join} WHERE {' AND '.join(where)}")
        return base, params

    def why_flagged(self, image_ids):
        """``{image_id: "model: detector, detector; ..."}``: which detectors of which model put it in their top 1%."""
        ids = [int(i) for i in image_ids]
        if not ids:
            return {}
        rows = self.rows("""SELECT image_id, model, flagged_by FROM outliers
                            WHERE model <> 'consensus' AND flagged_by <> '' AND image_id IN (SELECT unnest(?))
                            ORDER BY image_id, model""", [ids])
        out = {}
        for image_id, model, flagged in rows:
            out.setdefault(image_id, []).append(f"{model}: {flagged.replace(',', ', ')}")
        return {i: "; ".join(v) for i, v in out.items()}

    def paths(self, image_ids):
        """``{image_id: path}``."""
        ids = [int(i) for i in image_ids]
        return dict(self.rows("SELECT image_id, path FROM images WHERE image_id IN (SELECT unnest(?))", [ids]))

    # cluster names (lib.reviews keeps them; these find a cluster again in this build)
    def cluster_signature(self, model, cluster, n=500):
        """Paths of up to ``n`` members of a cluster, a hash-ordered (stable, spread) sample."""
        return [r[0] for r in self.rows("""SELECT i.path FROM assignments a JOIN images i USING (image_id)
                                           WHERE a.model = ? AND a.cluster = ? ORDER BY hash(i.path) LIMIT ?""",
                                        [model, int(cluster), int(n)])]

    def clusters_of_paths(self, model, paths):
        """``{path: cluster}`` under ``model`` for the given paths this build has."""
        return dict(self.rows("""SELECT i.path, a.cluster FROM images i JOIN assignments a USING (image_id)
                                 WHERE a.model = ? AND i.path IN (SELECT unnest(?::VARCHAR[]))""",
                              [model, list(paths)]))
