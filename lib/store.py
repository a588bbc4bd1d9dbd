"""The DuckDB file: schema, bulk writes through Arrow, versioned builds.

Every build goes to a new file under ``<db>.builds/``; only when it is
complete does ``<db>`` (a symbolic link) switch to it, atomically. A reader
holding the old file keeps a consistent view (DuckDB keeps serving a replaced
file to open connections), and a crashed build leaves ``<db>`` as it was.
"""
from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from .descriptors import model_key
from .processes import alive

# bumped whenever a table or column changes meaning; the app refuses an older build and says how to rebuild
SCHEMA_VERSION = 4
RELEASE_TO = "1MB"  # DuckDB's memory limit for the moment of Writer.release_memory: evict all it can
SCHEMA = """
CREATE TABLE meta(key VARCHAR, value VARCHAR);
CREATE TABLE images(
    image_id INTEGER, path VARCHAR, vehicle_id VARCHAR, status VARCHAR,
    center_r FLOAT, center_g FLOAT, center_b FLOAT, color_name VARCHAR);
-- JPEG bytes do not compress: DuckDB's string compression only costs time, when written and when read
CREATE TABLE thumbnails(image_id INTEGER, jpeg BLOB USING COMPRESSION uncompressed);
CREATE TABLE models(
    model VARCHAR, source_file VARCHAR, dim INTEGER, pca_dim INTEGER,
    explained_variance DOUBLE, chosen_k INTEGER, calinski_harabasz DOUBLE,
    davies_bouldin DOUBLE, silhouette DOUBLE, inertia DOUBLE,
    nonfinite_rows BIGINT, map_knn_preservation DOUBLE, vector_table VARCHAR,
    sweep_sample_rows INTEGER, silhouette_sample_rows INTEGER, seconds DOUBLE,
    parts VARCHAR, same_vehicle_recall DOUBLE, vehicle_consistency DOUBLE, stability_ari DOUBLE,
    outlier_weight DOUBLE, duplicate_threshold DOUBLE,
    metric VARCHAR, structure VARCHAR, k_note VARCHAR, gap_at_k DOUBLE, gap_se_at_k DOUBLE,
    consistency_expected DOUBLE, consistency_kappa DOUBLE, color_nmi DOUBLE,
    rank_neighbours INTEGER, rank_neighbours_reason VARCHAR, rank_groups INTEGER, rank_groups_reason VARCHAR);
CREATE TABLE combination_parts(model VARCHAR, part VARCHAR, position INTEGER, weight DOUBLE);
CREATE TABLE algorithm_runs(
    model VARCHAR, algorithm VARCHAR, k INTEGER, n_clusters INTEGER, params VARCHAR, seconds DOUBLE,
    noise_share DOUBLE, calinski_harabasz DOUBLE, davies_bouldin DOUBLE, silhouette DOUBLE,
    vehicle_consistency DOUBLE, is_default BOOLEAN, degenerate VARCHAR);
CREATE TABLE algorithm_sweep(
    model VARCHAR, algorithm VARCHAR, value INTEGER, n_clusters INTEGER, noise_share DOUBLE,
    calinski_harabasz DOUBLE, calinski_harabasz_gain DOUBLE, davies_bouldin DOUBLE, silhouette DOUBLE,
    sample_rows INTEGER);
CREATE TABLE algorithm_assignments(
    model VARCHAR, algorithm VARCHAR, image_id INTEGER, cluster INTEGER, center_distance FLOAT, margin FLOAT);
CREATE TABLE algorithm_clusters(
    model VARCHAR, algorithm VARCHAR, cluster INTEGER, size BIGINT, color_name VARCHAR, color_share DOUBLE);
CREATE TABLE model_agreement(model_a VARCHAR, model_b VARCHAR, ari DOUBLE, nmi DOUBLE, knn_overlap DOUBLE);
CREATE TABLE pca_variance(model VARCHAR, component INTEGER, ratio DOUBLE, cumulative DOUBLE);
CREATE TABLE pca_mean(model VARCHAR, mean DOUBLE[]);
CREATE TABLE pca_components(model VARCHAR, component INTEGER, loadings FLOAT[]);
CREATE TABLE cluster_centres(model VARCHAR, cluster INTEGER, centre FLOAT[], distance_q99 DOUBLE);
CREATE TABLE k_scores(
    model VARCHAR, k INTEGER, calinski_harabasz DOUBLE, davies_bouldin DOUBLE, silhouette DOUBLE,
    inertia DOUBLE, gap DOUBLE, gap_se DOUBLE);
CREATE TABLE clusters(model VARCHAR, cluster INTEGER, size BIGINT, color_name VARCHAR, color_share DOUBLE);
CREATE TABLE assignments(model VARCHAR, image_id INTEGER, cluster INTEGER, center_distance FLOAT);
CREATE TABLE map(model VARCHAR, image_id INTEGER, x FLOAT, y FLOAT);
CREATE TABLE neighbors(model VARCHAR, image_id INTEGER, rank SMALLINT, neighbor_id INTEGER, distance FLOAT);
CREATE TABLE outliers(
    model VARCHAR, image_id INTEGER, score FLOAT, rank INTEGER, one_in DOUBLE, flagged_by VARCHAR, cause VARCHAR);
CREATE TABLE duplicate_groups(group_id INTEGER, image_id INTEGER, is_representative BOOLEAN, size INTEGER);
CREATE TABLE outlier_scores(
    model VARCHAR, image_id INTEGER, knn FLOAT, lof FLOAT, centroid FLOAT,
    iforest FLOAT, vehicle FLOAT);
CREATE TABLE stages(stage VARCHAR, model VARCHAR, seconds DOUBLE, cpu_seconds DOUBLE, peak_rss_mb DOUBLE);
"""


READ_MEMORY_LIMIT = "384MB"


def vector_table(model):
    """Name of the table holding a model's reduced descriptors (only ``[0-9a-z_]``)."""
    return "vectors_" + model_key(model)


def _identifier(name):
    """``name`` if it is a plain SQL identifier (table and column names are
    the only parts of a statement built as text), else ValueError."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def _arrow(columns):
    arrays, names = [], []
    for name, values in columns.items():
        if isinstance(values, np.ndarray) and values.ndim == 2:
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
        elif isinstance(values, np.ndarray):
            arrays.append(pa.array(values))
        else:
            arrays.append(pa.array(values))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def insert(con, table, columns):
    """Append rows given as ``{column: array or list}`` to ``table`` through Arrow."""
    # names go into the SQL text (values never do): only plain identifiers
    for name in (table, *columns):
        _identifier(name)
    con.register("_incoming", _arrow(columns))
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _incoming')
    finally:
        con.unregister("_incoming")


class Writer:
    """Writes one build file. Use as a context manager; :meth:`publish` at the end."""

    def __init__(self, db_path):
        self.db_path = Path(db_path)
        self.build_path = new_build_path(self.db_path)
        self.con = duckdb.connect(str(self.build_path))
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute(SCHEMA)
        self.set_meta(schema_version=SCHEMA_VERSION)

    def insert(self, table, columns):
        """Append rows given as ``{column: array or list}``, in table column order."""
        insert(self.con, table, columns)

    def create_vectors(self, model, Z):
        """Store reduced descriptors as ``FLOAT[d]`` arrays (similarity in SQL)."""
        name = _identifier(vector_table(model))
        self.con.execute(f'CREATE TABLE "{name}"(image_id INTEGER, vec FLOAT[{int(Z.shape[1])}])')
        self.insert(name, {"image_id": np.arange(len(Z), dtype=np.int32), "vec": Z.astype(np.float32)})
        return name

    def set_meta(self, **items):
        for k, v in items.items():
            self.con.execute("INSERT INTO meta VALUES (?, ?)", [k, str(v)])

    @contextmanager
    def many_appends(self):
        """Many small appends (the thumbnails' batches of 512) with one checkpoint at the end.

        DuckDB checkpoints whenever its write-ahead log passes 16 MiB, and each
        checkpoint rewrites the table's last, growing row group: at 200,000
        thumbnails that cost the loader 8 s of its own CPU (18.5 s against
        10.3 s), beside the decoders' processes.
        """
        before = self.con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
        self.con.execute("SET checkpoint_threshold = '64GiB'")
        try:
            yield
        finally:
            self.con.execute(f"SET checkpoint_threshold = '{before}'")
        self.con.execute("CHECKPOINT")  # inside the stage that caused it
        self.release_memory()

    def release_memory(self):
        """Drop what DuckDB's buffer pool still holds of written data.

        After a checkpoint the appended blocks are on disk but stay cached up to
        DuckDB's memory limit (80% of RAM): 1.4 GB after the thumbnails of
        414,575 images, which then sat under every later stage's peak (the
        foundation load's 5.69 GB became 6.54 GB when the thumbnails moved
        first). Lowering the limit for a moment evicts them; reads load again what
        they need.
        """
        try:
            self.con.execute(f"SET memory_limit = '{RELEASE_TO}'")
        except duckdb.Error:  # something is pinned and cannot be evicted: keep it, lose nothing
            pass
        finally:
            self.con.execute("RESET memory_limit")  # a Writer runs with DuckDB's default

    def publish(self, keep=2):
        """Finish the file and make ``db_path`` point to it."""
        self.con.execute("CHECKPOINT")
        self.con.close()
        self.con = None
        with open(self.build_path, "rb") as f:
            os.fsync(f.fileno())
        # only complete builds carry the .duckdb suffix: a killed load leaves a
        # .partial that never counts as a build and is never served
        done = self.build_path.with_suffix("")
        os.replace(self.build_path, done)
        self.build_path = done
        publish(self.db_path, self.build_path)
        prune(self.db_path, keep=keep)

    def abort(self):
        if self.con is not None:
            self.con.close()
            self.con = None
        for p in (self.build_path, Path(str(self.build_path) + ".wal")):
            if p.exists():
                p.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or self.con is not None:
            self.abort()
        return False


def builds_dir(db_path):
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".builds")


def new_build_path(db_path):
    d = builds_dir(db_path)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return d / f"{Path(db_path).stem}-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}.duckdb.partial"


def publish(db_path, build_path):
    """Atomically point the symbolic link ``db_path`` at ``build_path``.

    A plain file already at ``db_path`` is moved into the builds folder first,
    so no database is ever overwritten.
    """
    db_path = Path(db_path)
    if db_path.exists() and not db_path.is_symlink():
        os.replace(db_path, builds_dir(db_path) / f"{db_path.stem}-previous-{int(time.time())}.duckdb")
    tmp = db_path.parent / f".{db_path.name}.{os.getpid()}.link"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(build_path, db_path.parent), tmp)
    os.replace(tmp, db_path)


def prune(db_path, keep=2):
    """Delete all but the ``keep`` newest complete builds (never the current one),
    and the ``.partial`` files of loads that died.

    A ``.partial`` file carries its loader's process id; it is left alone
    while that process runs (a load in progress).

    Readers that still have an old file open keep reading it: on POSIX an
    unlinked file lives until its last handle closes.
    """
    current = resolve(db_path)
    d = builds_dir(db_path)
    files = sorted(d.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for p in files[keep:]:
        if current is None or p.resolve() != current:
            p.unlink(missing_ok=True)
    for p in d.glob("*.duckdb.partial"):
        if not alive(_build_pid(p)):
            p.unlink(missing_ok=True)
            Path(str(p) + ".wal").unlink(missing_ok=True)


def _build_pid(path):
    # <stem>-<stamp>-<pid>-<nanos>.duckdb.partial (see new_build_path)
    m = re.search(r"-(\d+)-\d{6}\.duckdb\.partial$", path.name)
    return int(m.group(1)) if m else None


def resolve(db_path):
    """The build file ``db_path`` currently points to, or None if there is none."""
    p = Path(db_path)
    if not p.exists():
        return None
    return p.resolve()


def connect(db_path):
    """Read-only connection to the newest complete build."""
    real = resolve(db_path)
    if real is None:
        raise FileNotFoundError(f"{db_path}: no database (build one with: python -m lib load DATA --db {db_path})")
    return open_read_only(real)


def open_read_only(path):
    """Read-only connection to one database file.

    Every reader opens files this way: DuckDB refuses a second connection to
    a file with another configuration in the same process.
    """
    # the app's queries are point lookups and small aggregates: a capped buffer pool
    # keeps a served app within a hosted tier's memory (DuckDB's default is 80% of RAM)
    return duckdb.connect(str(path), read_only=True, config={"memory_limit": READ_MEMORY_LIMIT})
