"""Where the load's heavy stages run: in this process (:class:`LocalEngine`, the default) or on a Dask
cluster (:class:`lib.dask_engine.DaskEngine`, ``--scheduler``). Both give the pipeline the same answers
in the same shapes, so it reads the same either way."""
from __future__ import annotations

from . import cluster, combine, descriptors, embed, images, metric, neighbors, reduce


class LocalEngine:
    """Every stage in this process (and its thumbnail and map worker processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *_):
        pass

    def read(self, model, path, n, metric_option):
        """Read and check one descriptor file: ``(rows, nonfinite mask, metric)``."""
        X, nonfinite = descriptors.validate(descriptors.load_array(path), path, n_rows=n)
        how = metric.check(metric_option or metric.default_metric(model, X))
        if how == "cosine":  # unit rows: Euclidean from here on ranks as cosine does
            X = metric.normalise_rows(X)
        return X, nonfinite, how

    def pca(self, model, X, n, variance, max_components, progress=None):
        """The PCA of the rows :meth:`read` gave and the reduced vectors: ``(Z, PCAModel)``."""
        pca = reduce.fit_pca(X, variance, max_components, progress=progress)
        return reduce.transform(pca, X), pca

    def combination(self, name, reduced):
        return combine.combine(reduced)

    def release(self, name):
        pass

    def kmeans(self, name, Z, k, random_state=0):
        return cluster.fit_kmeans(Z, k, random_state)

    def knn(self, name, Z, n_neighbors, random_state=0, n_jobs=None, seeds=None):
        return neighbors.build_knn(Z, n_neighbors, random_state, n_jobs, seeds=seeds)

    def isolation_forest(self, name, Z, rep, random_state=0):
        return None  # lib.outliers.all_scores fits and scores it in this process

    def thumbnails(self, image_root, rel_paths, size, n_jobs=2):
        return images.iter_thumbnails(image_root, rel_paths, size, n_jobs)

    def maps(self, background):
        """A :class:`lib.embed.MapWorker` when the maps are made alongside, else None (inline)."""
        return embed.MapWorker() if background else None


def open_engine(cfg, db_path):
    """The engine a :class:`lib.pipeline.LoadConfig` asks for; a Dask one keeps its row blocks in
    ``cfg.blocks_dir`` or beside the database."""
    if not cfg.scheduler:
        return LocalEngine()
    from pathlib import Path

    from .dask_engine import DaskEngine

    blocks_dir = cfg.blocks_dir or Path(db_path).resolve().parent / ".blocks"
    return DaskEngine(cfg.scheduler, blocks_dir, cfg.block_rows, cfg.ivf_part_rows, cfg.ivf_n_probe, cfg.map_sample)
