"""Steps kept by their inputs (lib.memo) and a load that reuses an earlier load's sweeps and maps."""
from dataclasses import replace

import duckdb
import numpy as np

from lib import memo, pipeline, store

from .tiny import TINY_CONFIG, make_tiny


def test_a_key_changes_with_every_input():
    Z = np.arange(12, dtype=np.float32).reshape(4, 3)
    k = memo.Memo.key("map", Z, 5, 0)
    assert k == memo.Memo.key("map", Z.copy(), 5, 0)
    other = Z.copy()
    other[3, 2] += 1e-6
    assert len({k, memo.Memo.key("map", other, 5, 0), memo.Memo.key("map", Z, 6, 0),
                memo.Memo.key("map", Z.astype(np.float64), 5, 0), memo.Memo.key("sweep", Z, 5, 0),
                memo.Memo.key("map", Z.reshape(3, 4), 5, 0)}) == 6


def test_get_put(tmp_path):
    m = memo.Memo(tmp_path / "m")
    assert m.get("abc") is None
    m.put("abc", (np.ones(3), 0.5))
    Y, p = m.get("abc")
    assert (Y == 1).all() and p == 0.5 and not list((tmp_path / "m").glob("*.tmp"))


def _table(path, sql):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _stages(path):
    return {(s, m) for s, m in _table(path, "SELECT stage, model FROM stages")}


def test_a_second_load_reuses_sweeps_kmeans_neighbours_and_maps_and_stores_the_same(tmp_path):
    data = make_tiny(tmp_path / "data", n=300)
    cfg = replace(TINY_CONFIG, reuse_dir=str(tmp_path / "reuse"))
    pipeline.load(data, tmp_path / "a.duckdb", replace(cfg, models=("alpha",)))  # like a first look
    pipeline.load(data, tmp_path / "b.duckdb", cfg)  # like the full load: alpha reused, beta new
    pipeline.load(data, tmp_path / "c.duckdb", TINY_CONFIG)  # no reuse at all
    b, c = store.resolve(tmp_path / "b.duckdb"), store.resolve(tmp_path / "c.duckdb")
    steps = ("k sweep", "clustering", "neighbours", "2-D map")
    assert {(f"{s} (reused)", "alpha") for s in steps} | {(s, "beta") for s in steps} <= _stages(b)
    assert not {(s, "alpha") for s in steps} & _stages(b)
    assert not {s for s, _ in _stages(c) if s.endswith("(reused)")}
    for sql in ("SELECT model, image_id, x, y FROM map ORDER BY ALL",
                "SELECT * FROM k_scores ORDER BY ALL",
                "SELECT * FROM assignments ORDER BY ALL", "SELECT * FROM neighbors ORDER BY ALL",
                "SELECT model, silhouette, inertia FROM models ORDER BY model",
                "SELECT model, chosen_k, structure, map_knn_preservation FROM models ORDER BY model"):
        assert _table(b, sql) == _table(c, sql), sql  # reused = what computing again gives
