"""Verdicts on images and names of clusters, in a SQLite file beside the database.

The main database is rebuilt from scratch by every load (a new DuckDB file,
see :mod:`lib.store`), and DuckDB lets only one process write a file; people's
work must survive both. So reviews live in their own SQLite file,
``<db>.reviews.sqlite`` (``<db>`` being the link the loader publishes), in WAL
mode with a busy timeout: many app sessions, processes and the CLI read and
write it at once, every save is its own short transaction, and the loader
never touches it.

Verdicts are keyed by the image's path relative to the image root
(``<folder>/<vehicle id>/<file>``), which a rebuild does not change; the
``image_id`` of the build it was given in is kept for convenience. Every save
is also appended to ``verdict_history``, so an overwritten verdict is not lost
either.

Cluster names are keyed by ``(model, build, cluster)``: a rebuild may number
clusters differently, so a name belongs to the build it was given in. With it
we keep a signature: up to :data:`SIGNATURE_SIZE` member paths (a hash-ordered
sample) and the cluster's size, from which :func:`carry_names` finds the
cluster of a newer build that is the same group of images (estimated Jaccard
overlap at least :data:`CARRY_JACCARD`; more than 0.5 makes the match unique).
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

VERDICTS = ("outlier", "fine", "unsure")
SIGNATURE_SIZE = 500
CARRY_JACCARD = 0.6
BUSY_TIMEOUT_MS = 30000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts(
    path TEXT PRIMARY KEY, image_id INTEGER, verdict TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    build TEXT, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verdict_history(
    path TEXT NOT NULL, image_id INTEGER, verdict TEXT, note TEXT, build TEXT, saved_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cluster_names(
    model TEXT NOT NULL, build TEXT NOT NULL, cluster INTEGER NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, signature TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (model, build, cluster));
"""
_UPSERT = """INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(path) DO UPDATE SET image_id = excluded.image_id, verdict = excluded.verdict,
             note = excluded.note, build = excluded.build, updated_at = excluded.updated_at"""
_HISTORY = "INSERT INTO verdict_history VALUES (?, ?, ?, ?, ?, ?)"


def default_path(db_path):
    """``<db>.reviews.sqlite`` beside the database link ``db_path``."""
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".reviews.sqlite")


def _now():
    return time.strftime("%Y-%m-%d %H:%M:%S")


class Reviews:
    """The reviews file; every method opens its own connection, so one object serves many threads.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created on first use); see :func:`default_path`.
    """

    def __init__(self, path):
        self.path = Path(path)
        with closing(self._connect()) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return con

    def _write(self, statements):
        # BEGIN IMMEDIATE takes the write lock up front, so a busy writer waits
        # (busy_timeout) instead of failing half-way through the transaction
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    con.execute(sql, params)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _read(self, sql, params=()):
        with closing(self._connect()) as con:
            return con.execute(sql, params).fetchall()

    # verdicts
    @staticmethod
    def _save(path, image_id, verdict, note, build, now):
        """The statements that save one verdict (None with no note clears it) and its history row."""
        if verdict is None and not note:
            current = ("DELETE FROM verdicts WHERE path = ?", (path,))
        else:
            current = (_UPSERT, (path, image_id, verdict or "unsure", note, build, now))
        return [current, (_HISTORY, (path, image_id, verdict, note, build, now))]

    def set_verdict(self, path, verdict, note="", image_id=None, build=None):
        """Save (or replace) the verdict on one image, at once.

        ``verdict=None`` with an empty note clears it (the history keeps it);
        a note without a verdict is saved as ``unsure``.
        """
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        self._write(self._save(path, image_id, verdict, (note or "").strip(), build, _now()))

    def set_verdicts(self, items, verdict, build=None, skip_reviewed=True):
        """Give one verdict to many images in one transaction; returns what undoes it.

        Parameters
        ----------
        items : iterable of (path, image_id)
        verdict : str
            One of :data:`VERDICTS`.
        skip_reviewed : bool
            Leave images that already have a verdict as they are (a bulk
            verdict does not overwrite one given by hand). Notes are kept.

        Returns
        -------
        list of (path, image_id, verdict or None, note)
            The images changed and what they held before; :meth:`restore`
            puts it back.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        items = [(str(p), None if i is None else int(i)) for p, i in items]
        before = self.verdicts([p for p, _ in items])
        undo, statements, now = [], [], _now()
        for path, image_id in items:
            old_verdict, note = before.get(path, (None, ""))
            if old_verdict is not None and (skip_reviewed or old_verdict == verdict):
                continue
            undo.append((path, image_id, old_verdict, note))
            statements += self._save(path, image_id, verdict, note, build, now)
        if statements:
            self._write(statements)
        return undo

    def restore(self, undo, build=None):
        """Put back the verdicts recorded in ``undo`` (see :meth:`set_verdicts`), in one transaction."""
        now = _now()
        statements = [st for path, image_id, verdict, note in undo
                      for st in self._save(path, image_id, verdict, note, build, now)]
        if statements:
            self._write(statements)

    def verdicts(self, paths=None):
        """``{path: (verdict, note)}`` for the given paths (all when None)."""
        if paths is None:
            rows = self._read("SELECT path, verdict, note FROM verdicts")
        else:
            paths = list(paths)
            rows = []
            for start in range(0, len(paths), 500):  # SQLite's parameter limit
                chunk = paths[start:start + 500]
                rows += self._read(f"SELECT path, verdict, note FROM verdicts WHERE path IN "
                                   f"({','.join('?' * len(chunk))})", chunk)
        return {p: (v, n) for p, v, n in rows}

    def verdict_table(self):
        """Every verdict as a DataFrame: path, image_id, verdict, note, build, updated_at."""
        import pandas as pd

        rows = self._read("SELECT path, image_id, verdict, note, build, updated_at FROM verdicts ORDER BY path")
        return pd.DataFrame(rows, columns=["path", "image_id", "verdict", "note", "build", "updated_at"])

    def reviewed_paths(self):
        return [r[0] for r in self._read("SELECT path FROM verdicts")]

    # cluster names
    def set_cluster_name(self, model, build, cluster, name, size, signature):
        """Name a cluster of one build; an empty name removes it.

        Parameters
        ----------
        signature : list of str
            Member paths (a sample), used to find the same cluster in later builds.
        """
        name = (name or "").strip()
        if not name:
            self._write([("DELETE FROM cluster_names WHERE model = ? AND build = ? AND cluster = ?",
                          (model, build, int(cluster)))])
            return
        self._write([("""INSERT INTO cluster_names VALUES (?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT(model, build, cluster) DO UPDATE SET name = excluded.name,
                         size = excluded.size, signature = excluded.signature,
                         updated_at = excluded.updated_at""",
                       (model, build, int(cluster), name, int(size),
                        json.dumps(list(signature)[:SIGNATURE_SIZE]), _now()))])

    def cluster_names(self, model=None):
        """Every stored name as dicts: model, build, cluster, name, size, signature, updated_at."""
        sql = "SELECT model, build, cluster, name, size, signature, updated_at FROM cluster_names"
        rows = self._read(sql + (" WHERE model = ?" if model else "") + " ORDER BY updated_at",
                          (model,) if model else ())
        keys = ("model", "build", "cluster", "name", "size", "signature", "updated_at")
        out = [dict(zip(keys, r)) for r in rows]
        for r in out:
            r["signature"] = json.loads(r["signature"])
        return out


def carry_names(stored, build, cluster_of, sizes, min_jaccard=CARRY_JACCARD):
    """Names that hold for the clusters of ``build``, each with where it came from.

    A name given in ``build`` itself holds as is. A name given in another
    build holds for the cluster of ``build`` holding the largest share of its
    signature members when the estimated Jaccard overlap of the two clusters,
    ``|A ∩ B| / |A ∪ B|`` with ``|A ∩ B| ≈ share × |A|``, reaches
    ``min_jaccard``; the newest such name wins, and a name from this build
    always wins.

    Parameters
    ----------
    stored : list of dict
        :meth:`Reviews.cluster_names` for one model.
    build : str
        The current build's file name.
    cluster_of : callable
        ``paths -> {path: cluster}`` in the current build (paths it lacks are left out).
    sizes : dict
        ``{cluster: size}`` in the current build.

    Returns
    -------
    names : dict
        ``{cluster: {"name", "build", "jaccard"}}``; jaccard is None for names of this build.
    orphans : list of dict
        Names from other builds that match no current cluster (with their best ``jaccard``).
    """
    names, orphans = {}, []
    for r in sorted(stored, key=lambda r: r["updated_at"]):
        if r["build"] == build:
            continue
        sig = r["signature"]
        got = cluster_of(sig)
        best, jac = None, 0.0
        if got and sig:
            counts = {}
            for c in got.values():
                counts[c] = counts.get(c, 0) + 1
            best, hits = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
            inter = hits / len(sig) * r["size"]
            jac = inter / max(r["size"] + sizes.get(best, 0) - inter, 1e-9)
        if best is not None and jac >= min_jaccard:
            names[best] = {"name": r["name"], "build": r["build"], "jaccard": float(jac)}
        else:
            orphans.append({**{k: r[k] for k in ("build", "cluster", "name")}, "jaccard": float(jac)})
    for r in stored:
        if r["build"] == build:
            names[r["cluster"]] = {"name": r["name"], "build": build, "jaccard": None}
    return names, orphans


def current_names(ex, reviews, model):
    """The cluster names that hold in the build ``ex`` serves, for ``model``; see :func:`carry_names`.

    Parameters
    ----------
    ex : lib.queries.Explorer
    reviews : Reviews
    """
    cl = ex.clusters(model)
    sizes = dict(zip(cl["cluster"], cl["size"]))
    return carry_names(reviews.cluster_names(model), ex.build, lambda p: ex.clusters_of_paths(model, p), sizes)


def name_cluster(ex, reviews, model, cluster, name):
    """Name (or, with an empty name, unname) a cluster of the build ``ex`` serves."""
    size = int(ex.clusters(model).set_index("cluster").loc[int(cluster), "size"])
    reviews.set_cluster_name(model, ex.build, cluster, name, size,
                             ex.cluster_signature(model, cluster, SIGNATURE_SIZE))
