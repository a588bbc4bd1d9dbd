"""The neighbour table of every model against exact search, and against pynndescent's defaults.

For each model of a database, on its stored reduced vectors: the table as the
loader builds it (:func:`lib.neighbors.build_knn`) and, in the same run, the
one pynndescent builds with its own defaults (what the loader used before),
each timed and scored as recall@10 against brute force on random rows.

    python -m bench --parts neighbours --app-db /path/to/vehicles.duckdb
"""
from __future__ import annotations

import time

import numpy as np

from lib import neighbors, projection, store


def measure(db, queries=2000, random_state=0, models=None):
    """Per model: rows, dims, seconds and recall@10 of both builds.

    Returns
    -------
    list of dict with ``model``, ``rows``, ``dims``, ``ours_s``, ``ours_recall``,
    ``defaults_s``, ``defaults_recall``, ``queries``
    """
    from pynndescent import NNDescent

    # numba compiles on the first build of each kind: paid here, so no timed build carries it
    warm = np.random.default_rng(0).normal(size=(3000, 64)).astype(np.float32)
    neighbors.build_knn(warm, neighbors.N_NEIGHBORS, exact_terms=0)
    NNDescent(warm, n_neighbors=neighbors.N_NEIGHBORS + 1, low_memory=True, compressed=False)
    con = store.connect(db)
    try:
        names = models or [r[0] for r in con.execute("SELECT model FROM models ORDER BY model").fetchall()]
        out = []
        for model in names:
            Z = np.ascontiguousarray(projection.stored_vectors(con, model), dtype=np.float32)
            q = np.random.default_rng(random_state).choice(len(Z), min(queries, len(Z)), replace=False)
            exact, _ = neighbors.exact_knn(Z, Z[q], 10, query_ids=q)
            t = time.perf_counter()
            ours, _ = neighbors.build_knn(Z, neighbors.N_NEIGHBORS, random_state=random_state, exact_terms=0)
            ours_s = time.perf_counter() - t
            t = time.perf_counter()
            idx, dist = NNDescent(Z, n_neighbors=neighbors.N_NEIGHBORS + 1, random_state=random_state,
                                  low_memory=True, compressed=False).neighbor_graph
            defaults_s = time.perf_counter() - t
            plain = neighbors._drop_self(idx, dist, neighbors.N_NEIGHBORS)[0][q]  # as build_knn keeps them
            out.append(dict(model=model, rows=len(Z), dims=Z.shape[1], queries=len(q),
                            ours_s=ours_s, ours_recall=neighbors.recall_at_k(ours[q], exact, 10),
                            defaults_s=defaults_s, defaults_recall=neighbors.recall_at_k(plain, exact, 10)))
        return out
    finally:
        con.close()


def section(rows):
    """The Markdown section of the report."""
    L = ["## Neighbours\n",
         f"The neighbour table of every model (pynndescent, as the loader builds it: a graph of "
         f"{neighbors.NND_GRAPH}, {neighbors.NND_CANDIDATES} candidates, {neighbors.NND_TREES} trees) against "
         f"pynndescent's defaults in the same run, on the stored reduced vectors; recall@10 against exact search on "
         f"{rows[0]['queries']:,} random rows. Target (issue 15): recall@10 ≥ 0.99 on every model.\n",
         "| model | rows × dims | ours s | ours recall@10 | defaults s | defaults recall@10 |",
         "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        L.append(f"| {r['model']} | {r['rows']:,} × {r['dims']} | {r['ours_s']:.1f} | **{r['ours_recall']:.4f}** | "
                 f"{r['defaults_s']:.1f} | {r['defaults_recall']:.4f} |")
    tot_o, tot_d = sum(r["ours_s"] for r in rows), sum(r["defaults_s"] for r in rows)
    L.append(f"| **total** | | **{tot_o:.0f}** | min {min(r['ours_recall'] for r in rows):.4f} | **{tot_d:.0f}** | "
             f"min {min(r['defaults_recall'] for r in rows):.4f} |\n")
    return L
