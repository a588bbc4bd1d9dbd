"""The load job: a dataset folder in, one complete DuckDB build out.

Steps, per model: read and check the descriptors, PCA, k sweep, choose k,
cluster all rows, neighbour graph, 2-D map, outlier scores; then, across
models, the consensus outlier rank; then thumbnails. Nothing is visible at
``db_path`` until every step has succeeded.
"""
from __future__ import annotations

import gc
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import cluster, descriptors, embed, images, neighbors, outliers, projection, reduce, store
from .progress import Progress


@dataclass
class LoadConfig:
    """Settings of one load; every source of randomness takes ``random_state``."""

    ks: tuple = cluster.DEFAULT_KS
    variance: float = reduce.VARIANCE_TARGET
    max_components: int = reduce.MAX_COMPONENTS
    n_neighbors: int = neighbors.N_NEIGHBORS
    sweep_sample: int = cluster.SWEEP_SAMPLE
    silhouette_sample: int = cluster.SILHOUETTE_SAMPLE
    map_iters: int = embed.ITERS
    map_exaggeration_iters: int = embed.EXAGGERATION_ITERS
    thumb_size: int = images.THUMB_SIZE
    models: tuple = field(default_factory=tuple)  # empty = every descriptor file
    random_state: int = 0
    n_jobs: int = 2


def load(data_dir, db_path, config=None, progress=None):
    """Build the database for a dataset folder.

    Parameters
    ----------
    data_dir : str or Path
        Folder with ``descriptors/``, ``images_paths.csv`` and ``raw_data/``.
    db_path : str or Path
        Where the database appears when complete (a link to the newest build).
    config : LoadConfig, optional
    progress : lib.progress.Progress, optional

    Returns
    -------
    dict
        The load report: rows, models, chosen k, image statuses, stage times.

    Raises
    ------
    lib.descriptors.InputError
        On bad input; nothing is written then.
    """
    cfg = config or LoadConfig()
    prog = progress or Progress()
    data_dir = Path(data_dir)
    t_start = time.perf_counter()

    with prog.stage("read paths"):
        image_list = descriptors.read_paths(data_dir / descriptors.PATHS_CSV)
        files = descriptors.discover(data_dir)
        if cfg.models:
            missing = sorted(set(cfg.models) - set(files))
            if missing:
                raise descriptors.InputError(data_dir / "descriptors", f"no file for model(s) {', '.join(missing)}")
            files = {m: files[m] for m in cfg.models}
        n = len(image_list)
        # fail before hours of work: reading is a memory map, so checking every file is cheap
        for path in files.values():
            descriptors.check(descriptors.load_array(path), path, n_rows=n)
    vehicle_codes = np.unique(np.array(image_list.vehicle_ids), return_inverse=True)[1].astype(np.int64)

    report = {"images": n, "models": {}}
    combined_scores = {}
    with store.Writer(db_path) as db:
        for model, path in files.items():
            t_model = time.perf_counter()
            info, combined_scores[model] = _load_model(db, model, path, n, vehicle_codes, cfg, prog)
            info["seconds"] = time.perf_counter() - t_model
            db.insert("models", {k: [v] for k, v in info.items()})
            report["models"][model] = {k: info[k] for k in ("dim", "pca_dim", "chosen_k", "nonfinite_rows")}
            gc.collect()

        with prog.stage("consensus outliers"):
            consensus = outliers.combine(combined_scores)
            _insert_outliers(db, "consensus", consensus, outliers.flagged_by(combined_scores))

        with prog.stage("cluster centres"):  # for `python -m lib assign` (issue 5)
            projection.store_centres(db)

        with prog.stage("thumbnails", total=n) as advance:
            status_counts = _store_thumbnails(db, data_dir, image_list, cfg, advance)
        report["image_status"] = status_counts

        columns = ("stage", "model", "seconds", "cpu_seconds", "peak_rss_mb")
        db.insert("stages", {c: [r[i] for r in prog.records] for i, c in enumerate(columns)})
        db.set_meta(data_dir=str(data_dir.resolve()), n_images=n, built_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                    config=json.dumps(asdict(cfg)), image_status=json.dumps(status_counts),
                    load_seconds=f"{time.perf_counter() - t_start:.1f}")
        db.publish()
    report["seconds"] = time.perf_counter() - t_start
    report["db"] = str(store.resolve(db_path))
    return report


def _load_model(db, model, path, n, vehicle_codes, cfg, prog):
    """All per-model steps; writes the model's rows and returns its summary."""
    with prog.stage("read descriptors", model=model):
        X, nonfinite = descriptors.validate(descriptors.load_array(path), path, n_rows=n)
    dim = X.shape[1]

    with prog.stage("PCA", total=n, model=model) as advance:
        pca = reduce.fit_pca(X, cfg.variance, cfg.max_components, progress=advance)
        Z = reduce.transform(pca, X)
    del X
    gc.collect()
    ratio = pca.explained_variance_ratio
    db.insert("pca_variance", {"model": [model] * len(ratio), "component": np.arange(1, len(ratio) + 1, dtype=np.int32),
                               "ratio": ratio, "cumulative": np.cumsum(ratio)})
    vtable = db.create_vectors(model, Z)
    projection.store_pca(db, model, pca)  # for `python -m lib assign` (issue 5)

    with prog.stage("k sweep", total=len(cfg.ks), model=model) as advance:
        sweep = cluster.k_sweep(Z, cfg.ks, cfg.sweep_sample, cfg.silhouette_sample, cfg.random_state, advance)
        k = cluster.choose_k(sweep)
    db.insert("k_scores", {"model": [model] * len(sweep), **{c: [s[c] for s in sweep] for c in sweep[0]}})

    with prog.stage("clustering", model=model):
        labels, centers, inertia = cluster.fit_kmeans(Z, k, cfg.random_state)
        scores = cluster.final_scores(Z, labels, cfg.sweep_sample, cfg.silhouette_sample, cfg.random_state)
    center_dist = np.linalg.norm(Z - centers[labels], axis=1).astype(np.float32)
    ids = np.arange(n, dtype=np.int32)
    db.insert("assignments", {"model": [model] * n, "image_id": ids, "cluster": labels, "center_distance": center_dist})
    sizes = np.bincount(labels, minlength=k)
    db.insert("clusters", {"model": [model] * k, "cluster": np.arange(k, dtype=np.int32), "size": sizes})

    with prog.stage("neighbours", model=model):
        knn_idx, knn_dist = neighbors.build_knn(Z, cfg.n_neighbors, cfg.random_state, cfg.n_jobs)
    kk = knn_idx.shape[1]
    db.insert("neighbors", {"model": [model] * (n * kk), "image_id": np.repeat(ids, kk),
                            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int16), n),
                            "neighbor_id": knn_idx.reshape(-1), "distance": knn_dist.reshape(-1)})

    with prog.stage("2-D map", total=cfg.map_iters + cfg.map_exaggeration_iters, model=model) as advance:
        Y = embed.tsne_map(Z, knn_idx, knn_dist, cfg.map_iters, cfg.map_exaggeration_iters,
                           cfg.random_state, cfg.n_jobs, advance)
        preservation = embed.knn_preservation(Z, Y, random_state=cfg.random_state)
    db.insert("map", {"model": [model] * n, "image_id": ids, "x": Y[:, 0], "y": Y[:, 1]})

    with prog.stage("outliers", model=model):
        raw = outliers.all_scores(Z, knn_idx, knn_dist, labels, centers, vehicle_codes, cfg.random_state)
        combined = outliers.combine(raw)
        _insert_outliers(db, model, combined, outliers.flagged_by(raw))
    db.insert("outlier_scores", {"model": [model] * n, "image_id": ids, **raw})

    info = dict(model=model, source_file=path.name, dim=dim, pca_dim=pca.n_components,
                explained_variance=pca.explained_variance, chosen_k=k, inertia=inertia,
                nonfinite_rows=nonfinite, map_knn_preservation=preservation, vector_table=vtable,
                sweep_sample_rows=min(n, cfg.sweep_sample),
                silhouette_sample_rows=min(n, cfg.sweep_sample, cfg.silhouette_sample), **scores)
    return info, combined


def _insert_outliers(db, model, score, flagged):
    n = len(score)
    order = np.argsort(-score, kind="stable")
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)
    db.insert("outliers", {"model": [model] * n, "image_id": np.arange(n, dtype=np.int32),
                           "score": score.astype(np.float32), "rank": rank, "flagged_by": flagged})


def _store_thumbnails(db, data_dir, image_list, cfg, advance):
    counts = dict.fromkeys(images.STATUSES, 0)
    start = 0
    root = data_dir / descriptors.IMAGE_ROOT
    for batch in images.iter_thumbnails(root, image_list.paths, cfg.thumb_size, cfg.n_jobs):
        ids = np.arange(start, start + len(batch), dtype=np.int32)
        statuses = [b[0] for b in batch]
        rgb = np.array([b[2] if b[2] else (np.nan,) * 3 for b in batch], dtype=np.float32)
        for s in statuses:
            counts[s] += 1
        db.insert("images", {
            "image_id": ids, "path": image_list.paths[start:start + len(batch)],
            "vehicle_id": image_list.vehicle_ids[start:start + len(batch)], "status": statuses,
            "center_r": rgb[:, 0], "center_g": rgb[:, 1], "center_b": rgb[:, 2],
            "color_name": [images.color_name(c) if s == "ok" else None for s, c in zip(statuses, rgb)]})
        ok = [i for i, b in enumerate(batch) if b[1] is not None]
        if ok:
            db.insert("thumbnails", {"image_id": ids[ok], "jpeg": [batch[i][1] for i in ok]})
        start += len(batch)
        advance(len(batch))
    # a cluster's colour name: measured from the centre pixels of its images
    db.con.execute("""
        UPDATE clusters SET color_name = c.name FROM (
            SELECT model, cluster, arg_max(color_name, cnt) AS name FROM (
                SELECT a.model, a.cluster, i.color_name, count(*) AS cnt
                FROM assignments a JOIN images i USING (image_id)
                WHERE i.color_name IS NOT NULL GROUP BY ALL)
            GROUP BY ALL) c
        WHERE clusters.model = c.model AND clusters.cluster = c.cluster""")
    return counts
