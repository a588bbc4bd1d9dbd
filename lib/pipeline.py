"""The load job: a dataset folder in, one complete DuckDB build out.

Steps: thumbnails and the body colour of every image first (the stage that
reads every file, alone on the cores); per model: read and check the
descriptors and reduce them (PCA); per model and per combination of models:
k sweep, KMeans on all rows, neighbour graph, the other clustering
algorithms, 2-D map, outlier scores, evidence; then, across models, the
consensus outlier rank, the colour of every cluster, the agreement between
models and their ranking. From ``MAP_WORKER_ROWS`` rows on, the 2-D maps are
made in a second process alongside the steps that follow them. The heavy
steps run where the engine says (:mod:`lib.engine`: this process, or Dask
workers with ``scheduler``); the answers and the database are the same.
Nothing is visible at ``db_path`` until every step has succeeded.
"""
from __future__ import annotations

import gc
import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import (algorithms, blocks, cluster, combine, descriptors, duplicates, embed, evidence, images, ivf, krange,
               memo, neighbors, outliers, projection, reduce, store)
from .engine import open_engine
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
    combinations: tuple = None  # None = combine.DEFAULTS whose parts are loaded; () = none
    algorithms: tuple = algorithms.ALGORITHMS
    random_state: int = 0
    n_jobs: int = 2
    map_worker: bool = None  # maps in a second process; None = from MAP_WORKER_ROWS rows on
    # model -> "euclidean" | "cosine" (rows L2-normalised before the PCA); a model not named gets
    # lib.metric.default_metric: cosine for re-ID models (osnet) and rows already of unit length
    metrics: dict = field(default_factory=dict)
    # a folder where k sweeps and 2-D maps are kept by their inputs and reused by a later load of the
    # same data (lib.memo); the first start's full load reuses its first look's
    reuse_dir: str = None
    # the heavy stages on Dask (lib.dask_engine): "local", "local:N" or "tcp://host:port"; None = this process
    scheduler: str = None
    blocks_dir: str = None  # the descriptors' row blocks for Dask workers; None = ".blocks" beside the database
    block_rows: int = blocks.BLOCK_ROWS
    ivf_part_rows: int = ivf.PART_ROWS
    ivf_n_probe: int = None  # parts probed per row; None = enough for lib.ivf.TARGET_RECALL on a sample
    map_sample: int = embed.MAP_SAMPLE


# below this a map takes seconds and starting a second process costs as much
MAP_WORKER_ROWS = 50_000


def load(data_dir, db_path, config=None, progress=None, engine=None):
    """Build the database for a dataset folder.

    Parameters
    ----------
    data_dir : str or Path
        Folder with ``descriptors/``, ``images_paths.csv`` and ``raw_data/``.
    db_path : str or Path
        Where the database appears when complete (a link to the newest build).
    config : LoadConfig, optional
    progress : lib.progress.Progress, optional
    engine : lib.engine.LocalEngine or lib.dask_engine.DaskEngine, optional
        An engine already open (the caller closes it); by default the one ``config`` asks for.

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
        unknown = sorted(set(cfg.metrics) - set(files))
        if unknown:
            raise descriptors.InputError("--metric", f"no descriptor file for model(s) {', '.join(unknown)}")
        n = len(image_list)
        krange.check_ks(cfg.ks, n)  # a LoadConfig built in code gets the CLI's one-line refusal too
        # fail before hours of work: reading is a memory map, so checking every file is cheap
        for path in files.values():
            descriptors.check(descriptors.load_array(path), path, n_rows=n)
        combos = combine.resolve(cfg.combinations, list(files), data_dir / "descriptors")
    vehicle_codes = np.unique(np.array(image_list.vehicle_ids), return_inverse=True)[1].astype(np.int64)

    report = {"images": n, "models": {}}
    results = {}
    background = cfg.map_worker if cfg.map_worker is not None else n >= MAP_WORKER_ROWS
    # the engine first: a scheduler that cannot be reached leaves nothing written
    with (nullcontext(engine) if engine else open_engine(cfg, db_path)) as eng, store.Writer(db_path) as db, \
            (eng.maps(background) or nullcontext()) as maps:
        # first, while no other stage or map runs: the stage reads every image and keeps both cores busy
        with prog.stage("thumbnails", total=n) as advance, db.many_appends():
            report["image_status"] = _store_thumbnails(db, eng, data_dir, image_list, cfg, advance)
        # every model's reduced vectors stay: near-duplicates and combinations need them all
        reduced, broken = {}, {}
        for model, path in files.items():
            reduced[model], broken[model], info = _read_and_reduce(db, eng, model, path, n, cfg, prog)
            results[model] = _structure_steps(db, eng, model, reduced[model], info, vehicle_codes, cfg, prog, maps)
            gc.collect()

        with prog.stage("near-duplicates"):
            rep, limits = duplicates.find({m: (r.knn_idx, r.knn_dist) for m, r in results.items()},
                                          reduced, broken)
            db.insert("duplicate_groups", duplicates.groups_table(rep))
        for model in files:
            _outlier_and_evidence_steps(db, eng, model, reduced[model], results[model], rep, limits[model],
                                        broken[model], vehicle_codes, cfg, prog)
        for name in combos:
            Z, info = _combination(db, eng, name, reduced)
            # its parts' neighbour tables are where its own neighbours start from (lib.neighbors)
            seeds = np.concatenate([results[p].knn_idx for p in combine.parts(name)], axis=1)
            results[name] = _structure_steps(db, eng, name, Z, info, vehicle_codes, cfg, prog, maps, seeds)
            parts_broken = np.any([broken[p] for p in combine.parts(name)], axis=0)
            _outlier_and_evidence_steps(db, eng, name, Z, results[name], rep,
                                        duplicates.threshold(results[name].knn_dist), parts_broken, vehicle_codes,
                                        cfg, prog)
            del Z
            gc.collect()
        del reduced
        for name in results:
            eng.release(name)
        for name, r in results.items():
            report["models"][name] = {k: r.info[k] for k in ("dim", "pca_dim", "chosen_k", "nonfinite_rows")}
        report["duplicate_images"] = int((np.bincount(rep, minlength=n)[rep] >= 2).sum())

        with prog.stage("consensus outliers"):
            # over the models only: a combination repeats its parts' evidence
            weights = {m: results[m].info["outlier_weight"] for m in files}
            any_broken = np.any([broken[m] for m in files], axis=0)
            log10_p = outliers.consensus({m: results[m].outlier_z for m in files}, weights, any_broken)
            causes = outliers.consensus_causes({m: results[m].outlier_log10_p for m in files},
                                               {m: results[m].outlier_causes for m in files}, weights, broken)
            _insert_outliers(db, "consensus", log10_p, rep,
                             outliers.flagged_by({m: -results[m].outlier_log10_p for m in files}), causes)

        with prog.stage("cluster centres"):  # for `python -m lib assign` (issue 5)
            projection.store_centres(db)

        with prog.stage("cluster colours"):
            _name_cluster_colours(db)

        if maps is not None:
            _collect_maps(db, maps, {m: r.map_key for m, r in results.items() if r.map_pending},
                          _memo(cfg), prog)

        with prog.stage("agreement and ranking"):
            db.insert("model_agreement", _columns(evidence.agreement(
                {m: r.labels for m, r in results.items()}, {m: r.knn for m, r in results.items()})))
            _rank(db, {m: r.labels for m, r in results.items()})
        # "ranks": the groups recommendation (None = no model has structure); "ranks_neighbours": finding a car
        report["ranks"] = dict(db.con.execute(
            "SELECT model, rank_groups FROM models ORDER BY rank_groups NULLS LAST, model").fetchall())
        report["ranks_neighbours"] = dict(db.con.execute(
            "SELECT model, rank_neighbours FROM models ORDER BY rank_neighbours, model").fetchall())
        report["structure"] = dict(db.con.execute("SELECT model, structure FROM models ORDER BY model").fetchall())

        if hasattr(eng, "workers"):  # on Dask, what the workers did: SCALING.md's figures
            report["dask"] = {"scheduler": eng.address, "recall_at_10": dict(eng.recall),
                              "workers": eng.workers(), "gathered_bytes": eng.gathered_bytes,
                              "traffic": list(eng.traffic)}
        columns = ("stage", "model", "seconds", "cpu_seconds", "peak_rss_mb")
        db.insert("stages", {c: [r[i] for r in prog.records] for i, c in enumerate(columns)})
        db.set_meta(data_dir=str(data_dir.resolve()), n_images=n, built_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                    config=json.dumps(asdict(cfg)), image_status=json.dumps(report["image_status"]),
                    load_seconds=f"{time.perf_counter() - t_start:.1f}")
        db.publish()
    report["seconds"] = time.perf_counter() - t_start
    report["db"] = str(store.resolve(db_path))
    return report


@dataclass
class ModelResult:
    """What the steps after a model's structure steps need from it."""

    info: dict
    labels: np.ndarray         # the default clustering
    centers: np.ndarray
    knn_idx: np.ndarray        # the neighbour table (self excluded), nearest first
    knn_dist: np.ndarray
    map_pending: bool = False  # its map is being made in the background
    map_key: str = None        # the map's lib.memo key (with a reuse folder), to keep that map
    outlier_z: np.ndarray = None       # calibrated model score as a normal z
    outlier_log10_p: np.ndarray = None
    outlier_causes: list = None

    @property
    def knn(self):
        """The 10 nearest of every image, for the agreement between models."""
        return self.knn_idx[:, :evidence.RECALL_K]


def _read_and_reduce(db, eng, model, path, n, cfg, prog):
    """Read one descriptor file and keep its PCA-reduced vectors; the rest of the rows go.

    Returns the reduced vectors, the mask of rows that held NaN/inf, and the model's info."""
    with prog.stage("read descriptors", model=model):
        X, nonfinite, how = eng.read(model, path, n, cfg.metrics.get(model))
    with prog.stage("PCA", total=n, model=model) as advance:
        Z, pca = eng.pca(model, X, n, cfg.variance, cfg.max_components, progress=advance)
    dim = len(pca.mean)
    del X
    gc.collect()
    ratio = pca.explained_variance_ratio
    db.insert("pca_variance", {"model": [model] * len(ratio), "component": np.arange(1, len(ratio) + 1, dtype=np.int32),
                               "ratio": ratio, "cumulative": np.cumsum(ratio)})
    projection.store_pca(db, model, pca)  # new data is projected the same way by `python -m lib assign`
    info = dict(model=model, source_file=path.name, dim=dim, pca_dim=pca.n_components,
                explained_variance=pca.explained_variance, nonfinite_rows=int(nonfinite.sum()), metric=how)
    return Z, nonfinite, info


def _combination(db, eng, name, reduced):
    """A combination's vectors from its parts' reduced blocks, each weighing the same."""
    parts = combine.parts(name)
    Z, weights = eng.combination(name, [reduced[p] for p in parts])
    db.insert("combination_parts", {"model": [name] * len(parts), "part": parts,
                                    "position": np.arange(len(parts), dtype=np.int32), "weight": weights})
    dims = db.con.execute("SELECT sum(dim), sum(explained_variance * pca_dim) / sum(pca_dim), sum(nonfinite_rows) "
                          "FROM models WHERE model IN (SELECT unnest(?))", [parts]).fetchone()
    info = dict(model=name, source_file=None, dim=int(dims[0]), pca_dim=Z.shape[1],
                explained_variance=float(dims[1]), nonfinite_rows=int(dims[2]), parts=name,
                metric="euclidean")  # on the parts' blocks, each reduced under its own metric
    return Z, info


def _structure_steps(db, eng, model, Z, info, vehicle_codes, cfg, prog, maps=None, seeds=None):
    """A model's (or a combination's) structure: k sweep, KMeans on all rows, neighbour
    graph, the other clustering algorithms, 2-D map. With a :class:`lib.embed.MapWorker`,
    the map is only queued on it; ``seeds``, a combination's parts' neighbour tables side by
    side, are where its neighbour graph starts."""
    t_model = time.perf_counter()
    n = len(Z)
    ids = np.arange(n, dtype=np.int32)
    vtable = db.create_vectors(model, Z)

    cache = _memo(cfg)
    # the vectors hashed once (about 1 s per model at full scale), only with a reuse folder
    z = cache and memo.Memo.key("vectors", Z)
    choice = _kept(cache, prog, model, ("k sweep", z, tuple(cfg.ks), cfg.sweep_sample, cfg.silhouette_sample,
                                        cfg.random_state),
                   lambda advance: cluster.choose(Z, cfg.ks, cfg.sweep_sample, cfg.silhouette_sample,
                                                  cfg.random_state, advance), total=len(cfg.ks))
    sweep, k = choice.scores, choice.k  # the gap statistic's k and verdict (a widened range's k included)
    db.insert("k_scores", {"model": [model] * len(sweep), **{c: [s[c] for s in sweep] for c in sweep[0]}})

    def final_kmeans(_):
        t = time.perf_counter()
        labels, centers, inertia = eng.kmeans(model, Z, k, cfg.random_state)
        t = time.perf_counter() - t
        return labels, centers, inertia, t, cluster.final_scores(Z, labels, cfg.sweep_sample, cfg.silhouette_sample,
                                                                 cfg.random_state)
    # the engine is in the keys: a Dask load's KMeans and neighbour table are other (equally good) answers;
    # so are the methods' own settings, which a newer version of this code may change
    labels, centers, inertia, t_kmeans, scores = _kept(
        cache, prog, model, ("clustering", type(eng).__name__, z, k, cfg.sweep_sample, cfg.silhouette_sample,
                             cfg.random_state, cluster.RESTARTS, cluster.RESTART_SAMPLE), final_kmeans)
    center_dist = np.linalg.norm(Z - centers[labels], axis=1).astype(np.float32)
    db.insert("assignments", {"model": [model] * n, "image_id": ids, "cluster": labels, "center_distance": center_dist})
    sizes = np.bincount(labels, minlength=k)
    db.insert("clusters", {"model": [model] * k, "cluster": np.arange(k, dtype=np.int32), "size": sizes})

    knn_idx, knn_dist = _kept(cache, prog, model, ("neighbours", type(eng).__name__, z, cfg.n_neighbors,
                                                   cfg.random_state, neighbors.EXACT_TERMS, neighbors.NND_GRAPH,
                                                   neighbors.NND_CANDIDATES, neighbors.NND_TREES,
                                                   neighbors.NND_SEEDED_GRAPH, seeds),
                              lambda _: eng.knn(model, Z, cfg.n_neighbors, cfg.random_state, cfg.n_jobs, seeds))
    kk = knn_idx.shape[1]
    db.insert("neighbors", {"model": [model] * (n * kk), "image_id": np.repeat(ids, kk),
                            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int16), n),
                            "neighbor_id": knn_idx.reshape(-1), "distance": knn_dist.reshape(-1)})

    _other_algorithms(db, model, Z, knn_idx, knn_dist, (labels, k, sweep, t_kmeans), vehicle_codes, cfg, prog,
                      choice.reference)

    preservation = None  # a map made in the background fills it in when stored
    # the grid too: a map kept by an older load on another grid is not this map
    map_key = cache and memo.Memo.key("2-D map", z, knn_idx, knn_dist, cfg.map_iters, cfg.map_exaggeration_iters,
                                      cfg.random_state, embed.GRID_INTS)
    reused = cache.get(map_key) if cache else None
    if reused is not None:
        with prog.stage("2-D map (reused)", model=model):
            Y, preservation = reused
            _insert_map(db, model, Y)
    elif maps is None:
        with prog.stage("2-D map", total=cfg.map_iters + cfg.map_exaggeration_iters, model=model) as advance:
            Y = embed.tsne_map(Z, knn_idx, knn_dist, cfg.map_iters, cfg.map_exaggeration_iters,
                               cfg.random_state, cfg.n_jobs, advance)
            preservation = embed.knn_preservation(Z, Y, random_state=cfg.random_state)
        _insert_map(db, model, Y)
        if cache:
            cache.put(map_key, (Y, preservation))
    else:
        maps.submit(model, Z, knn_idx, knn_dist, cfg.map_iters, cfg.map_exaggeration_iters,
                    cfg.random_state, cfg.n_jobs)

    info = dict(info, chosen_k=k, structure=choice.structure, k_note=choice.note, gap_at_k=choice.gap,
                gap_se_at_k=choice.gap_se,
                inertia=inertia, map_knn_preservation=preservation, vector_table=vtable,
                sweep_sample_rows=min(n, cfg.sweep_sample),
                silhouette_sample_rows=min(n, cfg.sweep_sample, cfg.silhouette_sample), **scores,
                seconds=time.perf_counter() - t_model)
    return ModelResult(info, labels, centers, knn_idx, knn_dist, map_pending=maps is not None and reused is None,
                       map_key=map_key)


def _outlier_and_evidence_steps(db, eng, model, Z, result, rep, duplicate_threshold, nonfinite, vehicle_codes,
                                cfg, prog):
    """Outlier scores (near-duplicate groups counted once) and the evidence; then the model's row."""
    t_model = time.perf_counter()
    n = len(Z)
    labels = result.labels
    with prog.stage("outliers", model=model):
        raw = outliers.all_scores(Z, result.knn_idx, result.knn_dist, labels, result.centers, vehicle_codes,
                                  rep, cfg.random_state, eng.isolation_forest(model, Z, rep, cfg.random_state))
        units = rep == np.arange(n)
        zs = outliers.detector_z(raw, units)
        result.outlier_z, result.outlier_log10_p = outliers.model_score(zs, nonfinite)
        result.outlier_causes = outliers.causes(zs, nonfinite)
        group_idx, _ = outliers.group_neighbours(result.knn_idx, result.knn_dist, rep)
        identity = evidence.same_vehicle_recall(group_idx, vehicle_codes)
        weight = outliers.trust(identity, outliers.chance_recall(vehicle_codes))
        _insert_outliers(db, model, result.outlier_log10_p, rep, outliers.flagged_by(raw), result.outlier_causes)
    db.insert("outlier_scores", {"model": [model] * n, "image_id": np.arange(n, dtype=np.int32), **raw})

    with prog.stage("evidence", model=model):
        chance = evidence.chance_corrected_consistency(labels, vehicle_codes, random_state=cfg.random_state)
        # the image's own near-duplicate frames never count as finding the same vehicle: any model finds them
        proof = dict(same_vehicle_recall=identity,
                     vehicle_consistency=chance["observed"], consistency_expected=chance["expected"],
                     consistency_kappa=chance["kappa"],
                     stability_ari=evidence.stability(Z, result.info["chosen_k"], cfg.sweep_sample,
                                                      random_state=cfg.random_state))
    result.info = dict(result.info, **proof, outlier_weight=weight,
                       duplicate_threshold=duplicate_threshold,
                       seconds=result.info["seconds"] + time.perf_counter() - t_model)
    db.insert("models", {c: [v] for c, v in result.info.items()})


def _memo(cfg):
    """The reuse folder of ``cfg`` as a :class:`lib.memo.Memo`, or None."""
    return memo.Memo(cfg.reuse_dir) if cfg.reuse_dir else None


def _kept(cache, prog, model, inputs, compute, **stage):
    """``compute(advance)`` as the stage named ``inputs[0]``; with a reuse folder (``cache``) that holds
    the result of identical ``inputs`` (the step's name first), that result instead, recorded as
    "<stage> (reused)"."""
    key = cache and memo.Memo.key(*inputs)
    value = cache.get(key) if cache else None
    if value is not None:
        with prog.stage(f"{inputs[0]} (reused)", model=model):
            return value
    with prog.stage(inputs[0], model=model, **stage) as advance:
        value = compute(advance)
    if cache:
        cache.put(key, value)
    return value


def _insert_map(db, model, Y):
    db.insert("map", {"model": [model] * len(Y), "image_id": np.arange(len(Y), dtype=np.int32),
                      "x": Y[:, 0], "y": Y[:, 1]})


def _collect_maps(db, maps, keys, cache, prog):
    """Store the maps made in the background (``keys``: model -> its lib.memo key, kept in
    ``cache`` when given). Each is recorded as its model's "2-D map" stage with the
    worker's own times; the wait is a stage of its own."""
    with prog.stage("waiting for 2-D maps", total=len(keys)) as advance:
        for model, key in keys.items():
            Y, preservation, seconds, cpu, peak = maps.result(model)
            if cache:
                cache.put(key, (Y, preservation))
            _insert_map(db, model, Y)
            db.con.execute("UPDATE models SET map_knn_preservation = ?, seconds = seconds + ? WHERE model = ?",
                           [preservation, seconds, model])
            prog.records.append(("2-D map", model, seconds, cpu, peak))
            advance(1)


def _other_algorithms(db, model, Z, knn_idx, knn_dist, kmeans_result, vehicle_codes, cfg, prog, reference):
    """Every configured algorithm on all rows: its sweep, run, scores and assignments; each k is
    chosen by the gap rule against the KMeans sweep's ``reference`` (:class:`lib.cluster.GapReference`)."""
    n = len(Z)
    sweep_idx = cluster.sample_rows(n, cfg.sweep_sample, cfg.random_state)
    sil_idx = cluster.sample_rows(len(sweep_idx), cfg.silhouette_sample, cfg.random_state + 1)
    # KMeans is already fitted (it is the default assignment), so it is always recorded
    for name in dict.fromkeys((algorithms.DEFAULT, *cfg.algorithms)):
        with prog.stage(f"cluster: {name}", model=model):
            run = algorithms.run(name, Z, knn_idx, knn_dist, cfg.ks, reference, sweep_idx, sil_idx,
                                 cfg.random_state, kmeans_result)
            scores = cluster.final_scores(Z, run.labels, cfg.sweep_sample, cfg.silhouette_sample, cfg.random_state)
            center_distance, margin = algorithms.centre_distances(Z, run.labels)
        _store_run(db, model, run, scores, center_distance, margin, vehicle_codes)


def _store_run(db, model, run, scores, center_distance, margin, vehicle_codes):
    n = len(run.labels)
    name = run.algorithm
    db.insert("algorithm_sweep", {
        "model": [model] * len(run.sweep), "algorithm": [name] * len(run.sweep),
        **{c: [r.get(c) for r in run.sweep] for c in ("value", "n_clusters", "noise_share", "calinski_harabasz",
                                                      "calinski_harabasz_gain", "davies_bouldin", "silhouette",
                                                      "sample_rows")}})
    db.insert("algorithm_runs", {
        "model": [model], "algorithm": [name], "k": [run.params.get("k")], "n_clusters": [run.n_clusters],
        "params": [json.dumps(run.params)], "seconds": [run.seconds], "noise_share": [run.noise_share],
        **{c: [v] for c, v in scores.items()},
        "vehicle_consistency": [evidence.vehicle_consistency(run.labels, vehicle_codes)],
        "is_default": [name == algorithms.DEFAULT], "degenerate": [run.degenerate]})
    db.insert("algorithm_assignments", {
        "model": [model] * n, "algorithm": [name] * n, "image_id": np.arange(n, dtype=np.int32),
        "cluster": run.labels, "center_distance": center_distance, "margin": margin})
    labels, sizes = np.unique(run.labels, return_counts=True)
    db.insert("algorithm_clusters", {"model": [model] * len(labels), "algorithm": [name] * len(labels),
                                     "cluster": labels.astype(np.int32), "size": sizes})


def _columns(rows):
    return {c: [r[c] for r in rows] for c in rows[0]}


def _rank(db, labels):
    """Agreement with the measured colour (after the thumbnails), then the two recommendations:
    ``models.rank_neighbours`` and ``models.rank_groups`` (1 = best) with their one-line reasons
    (:func:`lib.evidence.rank_neighbours`, :func:`lib.evidence.rank_groups`)."""
    colours = db.con.execute("SELECT color_name FROM images ORDER BY image_id").df()["color_name"].to_numpy()
    for model, lab in labels.items():
        nmi = evidence.colour_agreement(lab, colours)
        db.con.execute("UPDATE models SET color_nmi = ? WHERE model = ?", [None if np.isnan(nmi) else nmi, model])
    table = db.con.execute("SELECT * FROM models").df()
    for kind, fn in (("neighbours", evidence.rank_neighbours), ("groups", evidence.rank_groups)):
        place, reasons = fn(table)
        for model in place:
            db.con.execute(f"UPDATE models SET rank_{kind} = ?, rank_{kind}_reason = ? WHERE model = ?",
                           [place[model], reasons[model], model])


def _insert_outliers(db, model, log10_p, rep, flagged, causes):
    """One ranking: a near-duplicate group is one image, ranked once; its frames share the rank and score."""
    n = len(log10_p)
    log10_p = log10_p[rep]  # the group's representative speaks for it
    units = np.flatnonzero(rep == np.arange(n))
    order = units[np.argsort(log10_p[units], kind="stable")]
    unit_rank = np.empty(n, dtype=np.int32)
    unit_rank[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    db.insert("outliers", {"model": [model] * n, "image_id": np.arange(n, dtype=np.int32),
                           "score": (-log10_p).astype(np.float32), "rank": unit_rank[rep],
                           "one_in": outliers.one_in(log10_p), "flagged_by": [flagged[r] for r in rep],
                           "cause": [causes[r] for r in rep]})


def _store_thumbnails(db, eng, data_dir, image_list, cfg, advance):
    counts = dict.fromkeys(images.STATUSES, 0)
    start = 0
    root = data_dir / descriptors.IMAGE_ROOT
    for batch in eng.thumbnails(root, image_list.paths, cfg.thumb_size, cfg.n_jobs):
        ids = np.arange(start, start + len(batch), dtype=np.int32)
        statuses = [b[0] for b in batch]
        rgb = images.body_rgbs(batch)
        for s in statuses:
            counts[s] += 1
        db.insert("images", {
            "image_id": ids, "path": image_list.paths[start:start + len(batch)],
            "vehicle_id": image_list.vehicle_ids[start:start + len(batch)], "status": statuses,
            "center_r": rgb[:, 0], "center_g": rgb[:, 1], "center_b": rgb[:, 2],
            "color_name": images.color_names(rgb)})  # None where no colour was measured (status not ok)
        ok = [i for i, b in enumerate(batch) if b[1] is not None]
        if ok:
            db.insert("thumbnails", {"image_id": ids[ok], "jpeg": [batch[i][1] for i in ok]})
        start += len(batch)
        advance(len(batch))
    return counts


def _name_cluster_colours(db):
    """Every cluster's colour, from its images' body colours (stored by the thumbnails stage)."""
    # a cluster's colour: the most common body colour of its images and that colour's share of its
    # named images; "mixed" when no colour holds MIXED_SHARE of them
    top = (f"CASE WHEN max(cnt) >= {images.MIXED_SHARE} * sum(cnt) THEN arg_max(color_name, cnt) "
           f"ELSE '{images.MIXED}' END AS name, max(cnt) / sum(cnt) AS share")
    db.con.execute(f"""
        UPDATE clusters SET color_name = c.name, color_share = c.share FROM (
            SELECT model, cluster, {top} FROM (
                SELECT a.model, a.cluster, i.color_name, count(*) AS cnt
                FROM assignments a JOIN images i USING (image_id)
                WHERE i.color_name IS NOT NULL GROUP BY ALL)
            GROUP BY ALL) c
        WHERE clusters.model = c.model AND clusters.cluster = c.cluster""")
    db.con.execute(f"""
        UPDATE algorithm_clusters SET color_name = c.name, color_share = c.share FROM (
            SELECT model, algorithm, cluster, {top} FROM (
                SELECT a.model, a.algorithm, a.cluster, i.color_name, count(*) AS cnt
                FROM algorithm_assignments a JOIN images i USING (image_id)
                WHERE i.color_name IS NOT NULL GROUP BY ALL)
            GROUP BY ALL) c
        WHERE algorithm_clusters.model = c.model AND algorithm_clusters.algorithm = c.algorithm
          AND algorithm_clusters.cluster = c.cluster""")
