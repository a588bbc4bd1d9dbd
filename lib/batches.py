"""New images labelled with an existing build: ``python -m lib assign`` writes, the app reads.

Each batch is its own DuckDB file, ``<db>.batches/<name>.duckdb``, beside the
database link ``<db>``:

* a rebuild of the main database replaces only the build the link points
  to and prunes only ``<db>.builds/``: it never drops a batch;
* a batch is written to ``<name>.duckdb.partial`` and renamed when complete,
  so a failed assign leaves nothing half-written, and the app, which only
  lists complete ``.duckdb`` files, keeps serving meanwhile;
* the batch records the build it was assigned against (``meta.build``), so
  its cluster numbers are read against that build's clusters and names.

Tables of a batch: ``meta(key, value)``; ``images(image_id, path, vehicle_id,
status, color_name)`` with ``image_id`` counting from 0 within the batch;
``thumbnails(image_id, jpeg)``; ``assignments(model, image_id, cluster,
distance, confidence, novel)``.
"""
from __future__ import annotations

import re
from pathlib import Path


from . import images, store

SCHEMA = """
CREATE TABLE meta(key VARCHAR, value VARCHAR);
CREATE TABLE images(image_id INTEGER, path VARCHAR, vehicle_id VARCHAR, status VARCHAR, color_name VARCHAR);
-- JPEG bytes do not compress: DuckDB's string compression only costs time, when written and when read
CREATE TABLE thumbnails(image_id INTEGER, jpeg BLOB USING COMPRESSION uncompressed);
CREATE TABLE assignments(model VARCHAR, image_id INTEGER, cluster INTEGER, distance FLOAT,
                         confidence FLOAT, novel BOOLEAN);
"""


def batches_dir(db_path):
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".batches")


def check_name(name):
    """A batch name safe as a file name and a URL value; ValueError if not."""
    name = str(name).strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", name) or name.endswith((".partial", ".duckdb")):
        raise ValueError(f"batch name {name[:40]!r}: use letters, digits, '_', '-', '.' (up to 80)")
    return name


def batch_path(db_path, name):
    return batches_dir(db_path) / f"{check_name(name)}.duckdb"


def list_batches(db_path):
    """Names of the complete batches of a database, oldest first."""
    d = batches_dir(db_path)
    if not d.is_dir():
        return []
    return [p.stem for p in sorted(d.glob("*.duckdb"), key=lambda p: (p.stat().st_mtime, p.name))]


class Batch:
    """Read-only queries on one batch; usable as ``ex`` by ``ui.gallery`` (it has :meth:`thumbnails`)."""

    def __init__(self, db_path, name):
        self.name = check_name(name)
        path = batch_path(db_path, name)
        if not path.exists():
            raise ValueError(f"no batch {name!r}")
        self.con = store.open_read_only(path)
        self.meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        self.n_images = self.con.execute("SELECT count(*) FROM images").fetchone()[0]

    def close(self):
        self.con.close()

    def df(self, sql, params=None):
        return self.con.cursor().execute(sql, params or []).df()

    def models(self):
        return [r[0] for r in self.con.cursor().execute(
            "SELECT DISTINCT model FROM assignments ORDER BY model").fetchall()]

    def per_cluster(self, model):
        """Images, novel images and mean confidence per assigned cluster."""
        return self.df("""SELECT cluster, count(*) AS images, sum(novel::INT) AS novel,
                                 avg(confidence) AS mean_confidence
                          FROM assignments WHERE model = ? GROUP BY cluster ORDER BY cluster""", [model])

    def images(self, model, cluster=None, novel_only=False, limit=24):
        """Images of the batch under ``model``, most confident first (least confident first if novel_only)."""
        where, params = "a.model = ?", [model]
        if cluster is not None:
            where += " AND a.cluster = ?"
            params.append(int(cluster))
        if novel_only:
            where += " AND a.novel"
        order = "a.distance DESC" if novel_only else "a.confidence DESC"
        return self.df(f"""SELECT a.image_id, i.path, i.vehicle_id, a.cluster, a.distance, a.confidence, a.novel
                           FROM assignments a JOIN images i USING (image_id)
                           WHERE {where} ORDER BY {order}, a.image_id LIMIT ?""", params + [int(limit)])

    def thumbnails(self, image_ids):
        ids = [int(i) for i in image_ids]
        if not ids:
            return {}
        got = dict(self.con.cursor().execute(
            "SELECT image_id, jpeg FROM thumbnails WHERE image_id IN (SELECT unnest(?))", [ids]).fetchall())
        return {i: got.get(i) or images.placeholder() for i in ids}
