"""The load's heavy stages as Dask tasks (``python -m lib load ... --scheduler ADDRESS``).

Every descriptor file is converted once to row blocks (:mod:`lib.blocks`) and
each task reads or holds one block of rows:

- PCA: per-block column sums, then per-block centred scatter matrices, added
  up by the loader, which takes the eigendecomposition (the single path's
  chunked covariance, with chunks on many workers); every block is projected
  where it lies and stays on its worker.
- KMeans: the restarts on a sample (as the single path), then Lloyd
  iterations whose per-block sums the loader adds up; every block assigned.
- Neighbours: an IVF partition by coarse centre (:mod:`lib.ivf`); a part's
  members are gathered from the blocks, each block's rows are searched in the
  parts of their nearest centres and the candidates merged per block, so no
  worker holds every vector.
- Outliers: the IsolationForest is fitted on a sample and scores every block.
- Thumbnails: one task per batch of paths.
- 2-D map: t-SNE fitted on a sample on one worker; every block placed by its
  nearest sample points.

Every result is a task's output, never scattered data, so a worker lost
mid-load is replaced by Dask recomputing what it held. The loader gathers the
reduced vectors and the tables and writes the same database as the single
path does.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import blocks, cluster, combine, embed, images, ivf, metric, neighbors, outliers, reduce
from .descriptors import InputError
from .processes import plain_main
from .progress import cpu_seconds, peak_rss_mb

OPTION = "--scheduler"
CONNECT_SECONDS = 10
LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4          # as scikit-learn's KMeans: of the mean per-dimension variance
PLACE_K = 10              # a placed row sits at the distance-weighted mean of this many sample rows
THUMB_WINDOW = 32         # thumbnail batches in flight: the loader stores them in order as they come


def parse_address(address):
    """``("local", n_workers)`` or ``("remote", address)``; InputError on anything else."""
    a = str(address).strip()
    if a == "local" or a.startswith("local:"):
        n = a.partition(":")[2] or str(os.cpu_count() or 1)
        if not n.isdigit() or int(n) < 1:
            raise InputError(OPTION, f"{address!r}: local:N wants a number of workers of 1 or more")
        return "local", int(n)
    if a.startswith(("tcp://", "tls://")) and a.split("://", 1)[1]:
        return "remote", a
    raise InputError(OPTION, f"{address!r}: expected local, local:N or tcp://host:port")


def connect(address, timeout=CONNECT_SECONDS):
    """A ``distributed.Client`` for ``address`` and the ``LocalCluster`` it started (or None).

    Raises InputError naming the address when the scheduler cannot be reached,
    refuses the connection or has no worker within ``timeout`` seconds."""
    from distributed import Client, LocalCluster

    kind, where = parse_address(address)
    if kind == "local":
        # one thread per worker process: the tasks run numpy/BLAS, which hold their own threads
        with plain_main():  # the worker processes are spawned: they must not re-run the caller's script
            cluster_ = LocalCluster(n_workers=where, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster_), cluster_
    try:
        client = Client(where, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as e:
        raise InputError(OPTION, f"cannot reach the Dask scheduler at {where}: {e}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise InputError(OPTION, f"the Dask scheduler at {where} has no worker") from None
    return client, None


def _counted(stage):
    """Record the bytes a :class:`DaskEngine` stage moves (its first argument names the model)."""
    def wrap(method):
        @functools.wraps(method)
        def counted(self, name, *args, **kwargs):
            with self._traffic(stage, name):
                return method(self, name, *args, **kwargs)
        return counted
    return wrap


class DaskEngine:
    """The heavy stages on a Dask cluster; use as a context manager.

    Parameters
    ----------
    address : str
        ``local``, ``local:N`` or ``tcp://host:port``.
    blocks_dir : str or Path
        Where descriptor files are converted to row blocks; on a real cluster,
        storage every worker reads at the same path.
    block_rows, part_rows, n_probe, map_sample : int
        Rows per block, rows per neighbour part (:mod:`lib.ivf`), parts searched
        per row (None: as many as :func:`lib.ivf.choose_n_probe` finds needed),
        and rows the 2-D map is fitted on.
    """

    def __init__(self, address, blocks_dir, block_rows=blocks.BLOCK_ROWS, part_rows=ivf.PART_ROWS,
                 n_probe=None, map_sample=embed.MAP_SAMPLE):
        self.address = address
        self.blocks_dir = Path(blocks_dir)
        self.block_rows, self.part_rows, self.n_probe, self.map_sample = block_rows, part_rows, n_probe, map_sample
        self.client, self._cluster = connect(address)
        self._z = {}        # model or combination -> futures of its reduced blocks
        self._bounds = None
        self._cosine = {}
        self.gathered_bytes = 0  # results brought to the loader
        self.recall = {}    # model -> neighbour recall@10 on a sample, against exact search
        self.traffic = []   # per stage: bytes moved (SCALING.md)

    # plumbing

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def close(self):
        self._z.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def _gather(self, futures):
        out = self.client.gather(futures)
        self.gathered_bytes += sum(_nbytes(o) for o in out)
        return out

    @contextmanager
    def _traffic(self, stage, model=None):
        """Record the bytes a stage moved: between workers, and from workers to the loader. Maps being made
        in the background at the time are counted in the stage that runs alongside."""
        sent0, got0 = self._sent(), self.gathered_bytes
        yield
        sent, got = self._sent() - sent0, self.gathered_bytes - got0
        self.traffic.append({"stage": stage, "model": model, "to_loader_bytes": got,
                             "between_workers_bytes": max(sent - got, 0)})

    def _sent(self):
        return sum(f["sent_bytes"] or 0 for f in self.workers().values())

    def workers(self):
        """Per worker: its peak resident memory (MiB) and the bytes it sent (to workers and the loader)."""
        return self.client.run(_worker_figures)

    # the stages

    def read(self, model, path, n, metric_option):
        """Convert one descriptor file to row blocks (once) and check it: ``(BlockSet, nonfinite, metric)``."""
        bset = blocks.convert(path, self.blocks_dir, n, self.block_rows)
        self._bounds = bset.bounds
        how = metric.check(metric_option or metric.default_metric(model, bset.sample(metric.CHECK_ROWS)))
        self._cosine[model] = how == "cosine"  # rows are L2-normalised as each block is read
        return bset, bset.nonfinite(), how

    @_counted("PCA")
    def pca(self, model, bset, n, variance, max_components, progress=None):
        """PCA from per-block sums, every block projected on its worker: ``(Z gathered, PCAModel)``."""
        from distributed import as_completed

        cosine = self._cosine[model]
        files = bset.files
        sums = self._gather([self.client.submit(_block_sums, f, cosine, pure=False) for f in files])
        mean = np.sum(sums, axis=0) / n
        scatter = np.zeros((bset.dim, bset.dim), dtype=np.float64)
        rows = {}
        pending = []
        for f, (start, stop) in zip(files, bset.bounds):
            pending.append(self.client.submit(_block_scatter, f, cosine, mean, pure=False))
            rows[pending[-1].key] = stop - start
        for fut in as_completed(pending):
            scatter += fut.result()
            self.gathered_bytes += scatter.nbytes
            if progress:
                progress(rows[fut.key])
        del pending
        pca = reduce.pca_from_scatter(mean, scatter, n, variance, max_components)
        self._z[model] = [self.client.submit(_block_project, f, cosine, pca.mean, pca.components, pure=False)
                          for f in files]
        return np.concatenate(self._gather(self._z[model])), pca

    @_counted("combination")
    def combination(self, name, reduced):
        """A combination's vectors (``reduced``: its parts' Z, in order) on the loader and on the workers."""
        Z, weights = combine.combine(reduced)
        parts = combine.parts(name)
        self._z[name] = [self.client.submit(combine.stack, [self._z[p][b] for p in parts], weights, pure=False)
                         for b in range(len(self._bounds))]
        return Z, weights

    def release(self, name):
        """Free a model's or combination's blocks on the workers."""
        self._z.pop(name, None)

    @_counted("clustering")
    def kmeans(self, name, Z, k, random_state=0):
        """KMeans on every block: the single path's restarts on a sample, then distributed Lloyd.

        Returns ``(labels int32, centres float32, inertia)``."""
        centres = np.asarray(cluster.restart_centres(Z, k, random_state), dtype=np.float64)
        tol = LLOYD_TOL * float(np.var(Z, axis=0, dtype=np.float64).mean())
        zf = self._z[name]
        for _ in range(LLOYD_MAX_ITER):
            c32 = centres.astype(np.float32)
            steps = self._gather([self.client.submit(_lloyd_step, z, c32, pure=False) for z in zf])
            sums = np.sum([s for s, _ in steps], axis=0)
            counts = np.sum([c for _, c in steps], axis=0)
            new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
            shift = float(((new - centres) ** 2).sum())
            centres = new
            if shift <= tol:
                break
        c32 = centres.astype(np.float32)
        parts = self._gather([self.client.submit(_assign, z, c32, pure=False) for z in zf])
        labels = np.concatenate([p[0] for p in parts])
        inertia = float(sum(p[1] for p in parts))
        return labels, c32, inertia

    @_counted("neighbours")
    def knn(self, name, Z, n_neighbors, random_state=0, n_jobs=None, seeds=None):
        """The neighbour table by IVF parts (:mod:`lib.ivf`); its recall@10 on a sample is kept in ``recall``.
        ``seeds`` is not needed: each part is searched exactly, whatever a combination's parts found.

        Returns ``(idx int32, dist float32)`` of shape (n, n_neighbors), self excluded."""
        n = len(Z)
        k = min(n_neighbors, n - 1)
        centres = ivf.fit_centres(Z, ivf.n_parts(n, self.part_rows), random_state)
        n_parts = len(centres)
        n_probe = (min(self.n_probe, n_parts) if self.n_probe else
                   ivf.choose_n_probe(Z, centres, random_state=random_state)[0])
        zf, bounds = self._z[name], self._bounds
        sub = self.client.submit
        probe = [sub(ivf.probes, z, centres, n_probe, pure=False) for z in zf]
        pieces = [[sub(ivf.members, z, start, pb, p, pure=False) for z, (start, _), pb in zip(zf, bounds, probe)]
                  for p in range(n_parts)]
        members = [sub(ivf.gather_part, pieces[p], pure=False) for p in range(n_parts)]
        merged = [sub(ivf.merge, stop - start, n_probe, k,
                      [sub(ivf.search_part, members[p], z, start, pb, p, k, pure=False) for p in range(n_parts)],
                      pure=False)
                  for z, (start, stop), pb in zip(zf, bounds, probe)]
        out = self._gather(merged)
        del pieces, members, merged
        idx = np.concatenate([o[0] for o in out])
        dist = np.concatenate([o[1] for o in out])
        short = np.flatnonzero((idx < 0).any(axis=1))
        if len(short):  # a row whose probed parts held fewer than k others: exact, on the loader
            idx[short], dist[short] = neighbors.exact_knn(Z, Z[short], k, query_ids=short)
        check = cluster.sample_rows(n, 1000, random_state)
        exact, _ = neighbors.exact_knn(Z, Z[check], min(10, k), query_ids=check)
        self.recall[name] = neighbors.recall_at_k(idx[check], exact, min(10, k))
        return idx, dist

    @_counted("outliers")
    def isolation_forest(self, name, Z, rep, random_state=0):
        """IsolationForest fitted on a sample of group representatives, scoring every block."""
        forest = outliers.fit_isolation_forest(Z, rep, random_state)
        return np.concatenate(self._gather([self.client.submit(outliers.isolation_scores, forest, z, pure=False)
                                            for z in self._z[name]]))

    def thumbnails(self, image_root, rel_paths, size, n_jobs=None):
        """Thumbnail batches of every path, in order (as :func:`lib.images.iter_thumbnails` yields them)."""
        root = str(image_root)
        tasks = deque(range(0, len(rel_paths), images.BATCH))
        window = deque()
        with self._traffic("thumbnails"):
            while tasks or window:
                while tasks and len(window) < THUMB_WINDOW:
                    i = tasks.popleft()
                    window.append(self.client.submit(images.thumbnail_batch, root, rel_paths[i:i + images.BATCH],
                                                     size, pure=False))
                yield self._gather([window.popleft()])[0]

    def maps(self, background=True):
        """Maps made on the workers while the loader goes on (the :class:`lib.embed.MapWorker` interface),
        whatever the size."""
        return _DaskMaps(self)


class _DaskMaps:
    """t-SNE fitted on a sample on one worker, every block placed by it; ``result`` as :func:`lib.embed.timed_map`."""

    def __init__(self, engine):
        self.engine = engine
        self._jobs = {}
        self._last_fit = None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self._jobs.clear()
        self._last_fit = None

    def submit(self, model, Z, knn_idx, knn_dist, n_iter, exaggeration_iter, random_state, n_jobs):
        eng, sub = self.engine, self.engine.client.submit
        zf, bounds = eng._z[model], eng._bounds
        idx = np.sort(cluster.sample_rows(len(Z), eng.map_sample, random_state))
        picks = [sub(_take, z, idx[(idx >= a) & (idx < b)] - a, pure=False) for z, (a, b) in zip(zf, bounds)]
        sample = sub(np.concatenate, picks, pure=False)
        # one map at a time, after the stages' own tasks: two fits at once would take both cores of a
        # small machine from the stages
        fit = sub(_fit_map, sample, knn_idx.shape[1], n_iter, exaggeration_iter, random_state, self._last_fit,
                  pure=False, priority=-10)
        self._last_fit = fit
        placed = [sub(_place, z, sample, fit, pure=False, priority=-10) for z in zf]
        self._random_state = random_state
        self._jobs[model] = (Z, fit, placed)  # Z: the loader's own copy, for the map's preservation check

    def result(self, model):
        Z, fit, placed = self._jobs.pop(model)
        _, fit_seconds, fit_cpu = self.engine._gather([fit])[0]
        parts = self.engine._gather(placed)
        Y = np.concatenate([p[0] for p in parts])
        seconds = fit_seconds + sum(p[1] for p in parts)  # the workers' time on it, not its time in the queue
        cpu = fit_cpu + sum(p[2] for p in parts)
        preservation = embed.knn_preservation(Z, Y, random_state=self._random_state)
        peak = max(f["peak_rss_mb"] for f in self.engine.workers().values())
        return Y, preservation, seconds, cpu, peak


# tasks: module-level, so that workers import them by name

def _block_sums(file, cosine):
    return reduce.column_sums(blocks.read_block(file, cosine))


def _block_scatter(file, cosine, mean):
    return reduce.centred_scatter(blocks.read_block(file, cosine), mean)


def _block_project(file, cosine, mean, components):
    return reduce.transform(reduce.PCAModel(mean, components, np.ones(len(mean))), blocks.read_block(file, cosine))


def _nearest(Zb, centres):
    d2 = (np.einsum("ij,ij->i", Zb, Zb)[:, None] - 2 * Zb @ centres.T
          + np.einsum("ij,ij->i", centres, centres)[None, :])
    labels = d2.argmin(axis=1)
    return labels.astype(np.int32), np.maximum(d2[np.arange(len(Zb)), labels], 0)


def _lloyd_step(Zb, centres):
    labels, _ = _nearest(Zb, centres)
    k = len(centres)
    member = np.zeros((len(Zb), k), dtype=np.float64)
    member[np.arange(len(Zb)), labels] = 1.0
    return member.T @ Zb.astype(np.float64), np.bincount(labels, minlength=k)  # one BLAS call, not np.add.at


def _assign(Zb, centres):
    labels, d2 = _nearest(Zb, centres)
    return labels, float(d2.sum(dtype=np.float64))


def _take(Zb, rows):
    return np.asarray(Zb[rows], dtype=np.float32)


def _fit_map(S, n_neighbors, n_iter, exaggeration_iter, random_state, after=None):
    """The t-SNE map of the sample ``S`` (``after``: the previous map's fit, only waited for).

    It leaves its worker's task slot at once (``distributed.secede``): the fit takes minutes, and the
    stages' short tasks whose blocks live on this worker would otherwise wait for it, as the single
    path's map runs in a process of its own beside the loader."""
    from distributed import secede

    secede()
    t0, c0 = time.perf_counter(), cpu_seconds()
    idx, dist = neighbors.build_knn(S, n_neighbors, random_state, n_jobs=1)
    Y = embed.tsne_map(S, idx, dist, n_iter, exaggeration_iter, random_state, n_jobs=1)
    return Y, time.perf_counter() - t0, cpu_seconds() - c0


def _place(Zb, S, fit):
    """Every row of a block at the distance-weighted mean of its nearest sample rows on the map
    (a row of the sample itself lands on its own place: its distance is 0)."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    Y_s = fit[0]
    k = min(PLACE_K, len(S))
    idx, dist = neighbors.exact_knn(S, Zb, k)
    w = 1.0 / np.maximum(dist.astype(np.float64), 1e-9) ** 2
    Y = (Y_s[idx] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)
    return Y.astype(np.float32), time.perf_counter() - t0, cpu_seconds() - c0


def _worker_figures(dask_worker=None):
    return {"peak_rss_mb": peak_rss_mb(), "sent_bytes": getattr(dask_worker, "transfer_outgoing_bytes_total", None)}


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    return 0
