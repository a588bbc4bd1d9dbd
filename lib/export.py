"""Labels out: every image with its clusters, names, outlier rank and verdict; the reviewed and flagged lists.

``python -m lib export --db PATH --out FILE.parquet|.csv`` writes
:func:`image_table`: one row per image and model (long format), so a model
added to a build is a new set of rows, not a new column.
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from . import reviews as _reviews
from .queries import Explorer

FORMATS = ("csv", "parquet")
IMAGE_COLUMNS = ["path", "image_id", "vehicle_id", "model", "cluster", "cluster_name", "consensus_rank",
                 "consensus_flagged_by", "verdict", "note"]


def _names_frame(ex, rev):
    rows = []
    for m in ex.model_names():
        names, _ = _reviews.current_names(ex, rev, m)
        rows += [(m, int(c), v["name"]) for c, v in names.items()]
    return pd.DataFrame(rows, columns=["model", "cluster", "cluster_name"]).astype(
        {"model": "string", "cluster": "int32", "cluster_name": "string"})


def _verdict_frame(rev):
    return rev.verdict_table()[["path", "verdict", "note", "updated_at"]].astype("string")


def image_table(ex, rev):
    """Every image × model: path, image_id, vehicle_id, model, cluster, cluster_name,
    consensus_rank (1 = most unusual), consensus_flagged_by, verdict, note.

    Parameters
    ----------
    ex : lib.queries.Explorer
    rev : lib.reviews.Reviews
    """
    cur = ex.con.cursor()
    cur.register("_names", _names_frame(ex, rev))
    cur.register("_verdicts", _verdict_frame(rev))
    return cur.execute("""
        SELECT i.path, i.image_id, i.vehicle_id, a.model, a.cluster, n.cluster_name,
               o.rank AS consensus_rank, o.flagged_by AS consensus_flagged_by, v.verdict, v.note
        FROM images i JOIN assignments a USING (image_id)
        LEFT JOIN outliers o ON o.image_id = i.image_id AND o.model = 'consensus'
        LEFT JOIN _names n ON n.model = a.model AND n.cluster = a.cluster
        LEFT JOIN _verdicts v ON v.path = i.path
        ORDER BY i.image_id, a.model""").df()


def reviewed_list(ex, rev):
    """Every verdict, with the image's place in this build (image_id, consensus rank) where it has it."""
    cur = ex.con.cursor()
    cur.register("_verdicts", _verdict_frame(rev))
    return cur.execute("""
        SELECT v.path, i.image_id, i.vehicle_id, v.verdict, v.note, v.updated_at,
               o.rank AS consensus_rank, o.flagged_by AS consensus_flagged_by
        FROM _verdicts v LEFT JOIN images i ON i.path = v.path
        LEFT JOIN outliers o ON o.image_id = i.image_id AND o.model = 'consensus'
        ORDER BY o.rank NULLS LAST, v.path""").df()


def flagged_list(ex, rev):
    """Images the consensus flags (some model put them in its top 1%), by rank, with why and the verdict."""
    cur = ex.con.cursor()
    cur.register("_verdicts", _verdict_frame(rev))
    df = cur.execute("""
        SELECT o.rank AS consensus_rank, i.image_id, i.path, i.vehicle_id, o.score, o.one_in, o.cause,
               o.flagged_by AS flagged_by_models, v.verdict, v.note
        FROM outliers o JOIN images i USING (image_id) LEFT JOIN _verdicts v ON v.path = i.path
        WHERE o.model = 'consensus' AND o.flagged_by <> '' ORDER BY o.rank""").df()
    why = ex.why_flagged(df["image_id"])
    df.insert(8, "flagged_by_detectors", [why.get(int(i), "") for i in df["image_id"]])
    return df


def to_bytes(df, fmt):
    """The table as a CSV or Parquet file's bytes (for a download button)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def export(db_path, out, reviews_path=None):
    """Write :func:`image_table` of the current build to ``out`` (``.csv`` or ``.parquet``).

    The file is written beside ``out`` first and renamed when complete.
    Returns the number of rows.
    """
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{out}: the file name must end in .csv or .parquet")
    ex = Explorer(db_path)
    try:
        df = image_table(ex, _reviews.Reviews(reviews_path or _reviews.default_path(db_path)))
    finally:
        ex.close()
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(to_bytes(df, fmt))
    tmp.replace(out)
    return len(df)
