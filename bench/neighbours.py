"""The neighbour table of every model against exact search, and against pynndescent's defaults.

For each model of a database, on its stored reduced vectors: the table as the
loader builds it (:func:`lib.neighbors.build_knn`) and, in the same run, the
one pynndescent builds with its own defaults (what the loader used before),
each timed and scored as recall@10 against brute force on random rows. A combination's table
starts, as in the loader, from its parts' tables built just before in the same run; its
seconds are its own build's (the load builds the parts' tables anyway).

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
    warm_idx, _ = neighbors.build_knn(warm, neighbors.N_NEIGHBORS, exact_terms=0)
    neighbors.build_knn(warm, neighbors.N_NEIGHBORS, exact_terms=0, seeds=warm_idx)
    NNDescent(warm, n_neighbors=neighbors.N_NEIGHBORS + 1, low_memory=True, compressed=False)
    con = store.connect(db)
    try:
        names = models or [r[0] for r in con.execute("SELECT model FROM models ORDER BY model").fetchall()]
        parts = dict(con.execute("SELECT model, list(part) FROM combination_parts GROUP BY model")
                     .fetchall())
        tables, out = {}, []
        # the models before the combinations, whose tables start from theirs
        for model in sorted(names, key=lambda m: m in parts):
            # a copy in numpy's own memory, as the loader holds its vectors: a build on the array DuckDB
            # handed over ran 31 s where the same build on a copy ran 24 s
            Z = np.array(projection.stored_vectors(con, model), dtype=np.float32, order="C")
            q = np.random.default_rng(random_state).choice(len(Z), min(queries, len(Z)), replace=False)
            exact, _ = neighbors.exact_knn(Z, Z[q], 10, query_ids=q)
            seeds = (np.concatenate([tables[p] for p in parts[model]], axis=1)
                     if model in parts and all(p in tables for p in parts[model]) else None)
            t = time.perf_counter()
            ours, _ = neighbors.build_knn(Z, neighbors.N_NEIGHBORS, random_state=random_state, exact_terms=0,
                                          seeds=seeds)
            ours_s = time.perf_counter() - t
            tables[model] = ours
            t = time.perf_counter()
            idx, dist = NNDescent(Z, n_neighbors=neighbors.N_NEIGHBORS + 1, random_state=random_state,
                                  low_memory=True, compressed=False).neighbor_graph
            defaults_s = time.perf_counter() - t
            plain = neighbors._drop_self(idx, dist, neighbors.N_NEIGHBORS)[0][q]  # as build_knn keeps them
            out.append(dict(model=model, rows=len(Z), dims=Z.shape[1], queries=len(q), seeded=seeds is not None,
                            ours_s=ours_s, ours_recall=neighbors.recall_at_k(ours[q], exact, 10),
                            defaults_s=defaults_s, defaults_recall=neighbors.recall_at_k(plain, exact, 10)))
        return out
    finally:
        con.close()


def section(rows):
    """The Markdown section of the report."""
    L = ["## Neighbours\n",
         f"The neighbour table of every model (pynndescent, as the loader builds it: a graph of "
         f"{neighbors.NND_GRAPH}, {neighbors.NND_CANDIDATES} candidates, {neighbors.NND_TREES} trees; a combination "
         f"marked * starts a graph of {neighbors.NND_SEEDED_GRAPH} from its parts' tables of the same run, instead "
         f"of trees, and its seconds are that build's) against "
         f"pynndescent's defaults in the same run, on the stored reduced vectors; recall@10 against exact search on "
         f"{rows[0]['queries']:,} random rows. Target (issue 15): recall@10 ≥ 0.99 on every model.\n",
         "| model | rows × dims | ours s | ours recall@10 | defaults s | defaults recall@10 |",
         "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        mark = " *" if r.get("seeded") else ""
        L.append(f"| {r['model']}{mark} | {r['rows']:,} × {r['dims']} | {r['ours_s']:.1f} | "
                 f"**{r['ours_recall']:.4f}** | {r['defaults_s']:.1f} | {r['defaults_recall']:.4f} |")
    tot_o, tot_d = sum(r["ours_s"] for r in rows), sum(r["defaults_s"] for r in rows)
    L.append(f"| **total** | | **{tot_o:.0f}** | min {min(r['ours_recall'] for r in rows):.4f} | **{tot_d:.0f}** | "
             f"min {min(r['defaults_recall'] for r in rows):.4f} |\n")
    return L
