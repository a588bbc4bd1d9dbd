"""What a build keeps so that new images can be placed in it: PCA and cluster centres.

The loader calls :func:`store_pca` once per model and :func:`store_centres`
once at the end. :func:`reduce` and :func:`centres` read them back for
``python -m lib assign``.

A cluster's centre is the mean of its members' reduced vectors in the
model's default assignment (the ``assignments`` table), whatever algorithm
made that assignment. A combination model (a name with ``+``, listed in
``combination_parts``) has as reduced vector the concatenation over its parts
of that part's PCA-reduced vector times the part's weight.
"""
from __future__ import annotations

import numpy as np

from . import reduce as _reduce
from . import metric, store

TABLES = ("pca_mean", "pca_components", "cluster_centres")
NOVELTY_QUANTILE = 0.99


def store_pca(db, model, pca):
    """Write a fitted :class:`lib.reduce.PCAModel` (mean and kept components) to the build."""
    db.insert("pca_mean", {"model": [model], "mean": pca.mean.astype(np.float64)[None, :]})
    k = pca.n_components
    db.insert("pca_components", {"model": [model] * k, "component": np.arange(k, dtype=np.int32),
                                 "loadings": pca.components.astype(np.float32)})


def has_table(con, name):
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()[0][0])


def combination_parts(con, model):
    """``[(part, weight), ...]`` in position order for a combination model, else None."""
    if not has_table(con, "combination_parts"):
        return None
    rows = con.execute("SELECT part, weight FROM combination_parts WHERE model = ? ORDER BY position",
                       [model]).fetchall()
    return [(p, float(w)) for p, w in rows] or None


def _fetch_vectors(con, table):
    tbl = con.sql(f'SELECT vec FROM "{table}" ORDER BY image_id').to_arrow_table()
    col = tbl.column("vec").combine_chunks()
    d = col.type.list_size
    return col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)


def stored_vectors(con, model):
    """The build's reduced vectors of every image for ``model`` (n, d), in image_id order."""
    table = store.vector_table(model)
    if has_table(con, table):
        return _fetch_vectors(con, table)
    parts = combination_parts(con, model)
    if parts is None:
        raise KeyError(f"no stored vectors for model {model!r}")
    return np.hstack([_fetch_vectors(con, store.vector_table(p)) * np.float32(w) for p, w in parts])


def store_centres(db):
    """Centres and member-distance quantiles of every model's default clustering.

    Run at the end of the load, when ``assignments`` and the vector tables
    are complete.
    """
    con = db.con
    for (model,) in con.execute("SELECT DISTINCT model FROM assignments ORDER BY model").fetchall():
        Z = stored_vectors(con, model)
        labels = con.execute("SELECT cluster FROM assignments WHERE model = ? ORDER BY image_id",
                             [model]).fetchnumpy()["cluster"].astype(np.int64)
        ids = np.unique(labels)
        centres = np.stack([Z[labels == c].mean(axis=0) for c in ids]).astype(np.float32)
        d = np.linalg.norm(Z - centres[np.searchsorted(ids, labels)], axis=1)
        q = [float(np.quantile(d[labels == c], NOVELTY_QUANTILE)) for c in ids]
        db.insert("cluster_centres", {"model": [model] * len(ids), "cluster": ids.astype(np.int32),
                                      "centre": centres, "distance_q99": np.array(q)})


def load_pca(con, model):
    """The stored PCA of a base model as a :class:`lib.reduce.PCAModel`."""
    mean = con.execute("SELECT mean FROM pca_mean WHERE model = ?", [model]).fetchall()
    comps = con.execute("SELECT loadings FROM pca_components WHERE model = ? ORDER BY component",
                        [model]).fetchall()
    if not mean or not comps:
        raise KeyError(f"no stored PCA for model {model!r}")
    C = np.array([c[0] for c in comps], dtype=np.float32)
    return _reduce.PCAModel(mean=np.asarray(mean[0][0], dtype=np.float64), components=C,
                            explained_variance_ratio=np.zeros(C.shape[1]))


def reduce(con, model, descriptors):
    """Reduce new descriptors as the build reduced its own.

    Parameters
    ----------
    descriptors : dict
        ``{base model: (n, dim) float32 array}``; a combination model takes its parts from it.
    """
    parts = combination_parts(con, model)
    if parts is None:
        return _reduce.transform(load_pca(con, model), _as_loaded(con, model, descriptors[model]))
    return np.hstack([_reduce.transform(load_pca(con, p), _as_loaded(con, p, descriptors[p])) * np.float32(w)
                      for p, w in parts])


def _as_loaded(con, model, X):
    """The rows as the loader fed them to the PCA: L2-normalised (in a copy) for a cosine model."""
    row = con.execute("SELECT metric FROM models WHERE model = ?", [model]).fetchone()
    return metric.normalise_rows(np.array(X, dtype=np.float32)) if row and row[0] == "cosine" else X


def centres(con, model):
    """``(cluster ids, centres (k, d), distance_q99 (k,))`` of a model."""
    df = con.execute("SELECT cluster, centre, distance_q99 FROM cluster_centres WHERE model = ? ORDER BY cluster",
                     [model]).fetchall()
    if not df:
        raise KeyError(f"no stored cluster centres for model {model!r}")
    return (np.array([r[0] for r in df], dtype=np.int32), np.array([r[1] for r in df], dtype=np.float32),
            np.array([r[2] for r in df], dtype=np.float64))


def nearest_centres(Z, centre_ids, C, q99):
    """Nearest centre of every row, a confidence and a novelty flag.

    confidence = 1 - d1 / d2 (d1, d2: distances to the nearest and the
    second-nearest centre): 0 halfway between two clusters, near 1 close to
    one centre and far from the others. novel = d1 above the 99th percentile
    of the distances of that cluster's own members to its centre, i.e.
    farther out than 99% of the images the cluster was built from.

    Returns
    -------
    cluster (n,) int32, distance (n,) float32, confidence (n,) float32, novel (n,) bool
    """
    d = np.sqrt(np.maximum(
        (Z * Z).sum(axis=1)[:, None] - 2 * Z @ C.T + (C * C).sum(axis=1)[None, :], 0)).astype(np.float64)
    order = np.argsort(d, axis=1)
    d1 = d[np.arange(len(Z)), order[:, 0]]
    if C.shape[0] > 1:
        d2 = d[np.arange(len(Z)), order[:, 1]]
        conf = np.where(d2 > 0, 1 - d1 / np.maximum(d2, 1e-12), 0.0)
    else:
        conf = np.ones(len(Z))
    novel = d1 > q99[order[:, 0]]
    return (centre_ids[order[:, 0]].astype(np.int32), d1.astype(np.float32),
            conf.astype(np.float32), novel)
