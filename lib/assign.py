"""Label new images with an existing build: ``python -m lib assign NEWDIR --db PATH``.

The new folder has the layout the loader reads (``descriptors/``,
``images_paths.csv``, ``raw_data/``). Its descriptors are checked with the
loader's checks and must exist, with the same dimensions, for every model of
the build (extra descriptor files are ignored and reported). Every image is
reduced with the build's stored PCA and given the nearest stored cluster
centre, a confidence and a novelty flag (see
:func:`lib.projection.nearest_centres`); thumbnails are made as in the
loader; the result is a new batch (:mod:`lib.batches`). The build itself is
never written.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import numpy as np

from . import batches, descriptors, images, projection, store
from .descriptors import InputError
from .progress import Progress


def _check_inputs(con, db_path, new_dir):
    """Read and check the new folder against the build; returns ``(image_list, {model: array}, models, ignored)``."""
    missing_tables = [t for t in projection.TABLES if not projection.has_table(con, t)]
    if missing_tables:
        raise InputError(db_path, "was built before `assign` existed (no stored PCA and cluster centres); "
                                  "rebuild it with python -m lib load")
    image_list = descriptors.read_paths(new_dir / descriptors.PATHS_CSV)
    files = descriptors.discover(new_dir)
    dims = dict(con.execute("SELECT model, dim FROM models").fetchall())
    models = [r[0] for r in con.execute("SELECT DISTINCT model FROM cluster_centres ORDER BY model").fetchall()]
    needed = set()
    for m in models:
        parts = projection.combination_parts(con, m)
        needed.update(p for p, _ in parts) if parts else needed.add(m)
    missing = sorted(needed - set(files))
    if missing:
        raise InputError(new_dir / "descriptors", f"no file for model(s) {', '.join(missing)} "
                                                  f"(the database has {', '.join(sorted(needed))})")
    arrays = {}
    for m in sorted(needed):
        arr = descriptors.load_array(files[m])
        descriptors.check(arr, files[m], n_rows=len(image_list))
        if arr.shape[1] != dims.get(m):
            raise InputError(files[m], f"has {arr.shape[1]} dims but the database's {m} has {dims.get(m)}")
        arrays[m] = arr
    for m in sorted(needed):  # only once every file passed: a mismatch costs no conversion
        arrays[m] = descriptors.validate(arrays[m], files[m], n_rows=len(image_list))[0]
    return image_list, arrays, models, sorted(set(files) - needed)


def _store_images(bcon, new_dir, image_list, thumb_size, n_jobs, advance):
    start = 0
    ids = np.arange(len(image_list), dtype=np.int32)
    for batch in images.iter_thumbnails(new_dir / descriptors.IMAGE_ROOT, image_list.paths, thumb_size, n_jobs):
        sl = slice(start, start + len(batch))
        store.insert(bcon, "images", {
            "image_id": ids[sl], "path": image_list.paths[sl], "vehicle_id": image_list.vehicle_ids[sl],
            "status": [b[0] for b in batch],
            "color_name": images.color_names(images.body_rgbs(batch))})
        ok = [i for i, b in enumerate(batch) if b[1] is not None]
        if ok:
            store.insert(bcon, "thumbnails", {"image_id": ids[sl][ok], "jpeg": [batch[i][1] for i in ok]})
        start += len(batch)
        advance(len(batch))


def assign(new_dir, db_path, name=None, thumb_size=images.THUMB_SIZE, n_jobs=2, progress=None):
    """Assign a folder of new images to the clusters of the current build and store it as a batch.

    Parameters
    ----------
    new_dir : str or Path
        Folder in the loader's layout.
    db_path : str or Path
        The database link (``--db``); the batch goes to ``<db>.batches/``.
    name : str, optional
        Batch name; default the folder's name. An existing batch is never replaced.
    progress : lib.progress.Progress, optional
        Shown from the first stage on, after every check has passed.

    Returns
    -------
    dict
        ``name``, ``path``, ``images``, ``build``, ``ignored`` (descriptor files
        not used) and per model ``{model: {"novel": int, "mean_confidence": float}}``.

    Raises
    ------
    InputError
        Bad folder, models or dims that do not match the build, or a batch of
        that name already exists; nothing is written then.
    """
    new_dir = Path(new_dir)
    prog = progress or Progress()
    build = store.resolve(db_path)
    if build is None:
        raise InputError(db_path, "no database (build one with python -m lib load)")
    name = name or new_dir.resolve().name
    try:
        out = batches.batch_path(db_path, name)
    except ValueError as e:
        raise InputError(new_dir, f"{e} (choose one with --name)") from None
    if out.exists():
        raise InputError(out, f"batch {name!r} exists already (choose another with --name)")

    con = store.open_read_only(build)
    try:
        image_list, arrays, models, ignored = _check_inputs(con, db_path, new_dir)
        n = len(image_list)
        results = {}
        with prog.stage("nearest centres", total=len(models)) as advance:
            for m in models:
                Z = projection.reduce(con, m, arrays)
                results[m] = projection.nearest_centres(Z, *projection.centres(con, m))
                advance(1)
    finally:
        con.close()

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + f".{os.getpid()}.partial")
    bcon = duckdb.connect(str(partial))
    try:
        bcon.execute(batches.SCHEMA)
        ids = np.arange(n, dtype=np.int32)
        for m, (cl, dist, conf, novel) in results.items():
            store.insert(bcon, "assignments", {"model": [m] * n, "image_id": ids, "cluster": cl,
                                               "distance": dist, "confidence": conf, "novel": novel})
        with prog.stage("thumbnails", total=n) as advance:
            _store_images(bcon, new_dir, image_list, thumb_size, n_jobs, advance)
        meta = {"name": name, "source_dir": str(new_dir.resolve()), "build": build.name,
                "assigned_at": time.strftime("%Y-%m-%d %H:%M:%S"), "n_images": n,
                "novelty_rule": f"distance to the nearest centre above the {projection.NOVELTY_QUANTILE:.0%} "
                                "quantile of that cluster's members' distances"}
        bcon.executemany("INSERT INTO meta VALUES (?, ?)", [[k, str(v)] for k, v in meta.items()])
        bcon.execute("CHECKPOINT")
        bcon.close()
        if out.exists():  # another assign of the same name finished first: keep it
            raise InputError(out, f"batch {name!r} exists already (choose another with --name)")
        os.replace(partial, out)
    except BaseException:
        bcon.close()
        for p in (partial, Path(str(partial) + ".wal")):
            p.unlink(missing_ok=True)
        raise
    return {"name": name, "path": str(out), "images": n, "build": build.name, "ignored": ignored,
            "models": {m: {"novel": int(r[3].sum()), "mean_confidence": float(r[2].mean())}
                       for m, r in results.items()}}
