"""A 2-D map of every image: t-SNE on the neighbour graph already built.

openTSNE (FFT-accelerated gradients, linear in n) is given the pynndescent
graph of :mod:`lib.neighbors` instead of searching neighbours again, so the
map costs only the optimisation. Quality is measured as 10-NN preservation.
"""
from __future__ import annotations

import time

import numpy as np

from .cluster import sample_rows
from .neighbors import exact_knn
from .processes import SPAWN, orphan_guard, plain_main
from .progress import cpu_seconds, peak_rss_mb

# a short early exaggeration and a longer normal phase on a coarser FFT grid (an interval per 2
# units of the map, openTSNE's default 1): on the realistic set at 95,000 rows this kept more of the
# 10 nearest (0.432/0.246/0.346 on vdc_type/efficientnet/osnet) than 250 + 250 on the default grid
# (0.423/0.238/0.335) in 80% of its time, and at 414,575 demo rows 0.164 against 0.143 in 89%;
# the normal phase's grid grows with the map, so it costs most (docs/BENCHMARKS.md, "Maps")
EXAGGERATION_ITERS = 125
ITERS = 375
GRID_INTS = 2
STEP = 125  # progress after each; shorter steps cost more (25: 5% slower, 10-NN 0.429 against 0.432)
# below this many rows a map made beside the loader uses one thread: its threads then mostly wait on
# each other while the loader keeps both cores busy (vdc_type beside a 2-thread BLAS loop: 100,000 rows
# 37 s wall / 25 s CPU on 1 thread against 39 / 31 on 2; 6,132 rows, the first look's four maps: 24 s
# CPU against 52, the first look 49 s against 66); at 414,575 rows two threads take 121 s against 171
# for the same CPU
WORKER_THREAD_ROWS = 200_000
MAP_SAMPLE = 100_000  # on Dask (lib.dask_engine) the map is fitted on this many rows and the rest placed


def tsne_map(Z, knn_indices, knn_distances, n_iter=ITERS, exaggeration_iter=EXAGGERATION_ITERS,
             random_state=0, n_jobs=2, progress=None):
    """Embed every row in 2-D.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, d)
        Reduced descriptors; only their top principal components seed the map.
    knn_indices, knn_distances : numpy.ndarray, shape (n, k)
        Neighbour graph without self; perplexity is set to k / 3.
    n_iter, exaggeration_iter : int
        Optimisation steps after and during early exaggeration.
    random_state : int
    n_jobs : int
    progress : callable, optional
        Called with the number of iterations done after each step of STEP.

    Returns
    -------
    numpy.ndarray, shape (n, 2), float32
    """
    from openTSNE import TSNEEmbedding, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    n, k = knn_indices.shape
    if n < 4:
        return np.zeros((n, 2), dtype=np.float32)
    perplexity = max(2.0, k / 3.0)
    aff = affinity.PerplexityBasedNN(
        knn_index=PrecomputedNeighbors(knn_indices.astype(np.int64), knn_distances.astype(np.float64)),
        perplexity=perplexity, n_jobs=n_jobs, random_state=random_state)
    init = initialization.pca(Z, random_state=random_state)
    emb = TSNEEmbedding(init, aff, negative_gradient_method="fft", n_jobs=n_jobs,
                        random_state=random_state)
    for phase_iters, params in ((exaggeration_iter, dict(exaggeration=12, momentum=0.5)),
                                (n_iter, dict(exaggeration=1, momentum=0.8))):
        done = 0
        while done < phase_iters:
            step = min(STEP, phase_iters - done)
            emb = emb.optimize(step, learning_rate="auto", ints_in_interval=GRID_INTS, **params)
            done += step
            if progress:
                progress(step)
    return np.asarray(emb, dtype=np.float32)


def knn_preservation(Z, Y, n_samples=2000, k=10, random_state=0):
    """Share of each sampled point's ``k`` nearest neighbours in ``Z`` that are
    also among its ``k`` nearest on the map ``Y`` (exact on both sides)."""
    idx = sample_rows(len(Z), n_samples, random_state)
    hi, _ = exact_knn(Z, Z[idx], k, query_ids=idx)
    lo, _ = exact_knn(Y, Y[idx], k, query_ids=idx)
    return float(np.mean([len(np.intersect1d(h, l)) / k for h, l in zip(hi, lo)]))


def timed_map(Z, knn_indices, knn_distances, n_iter=ITERS, exaggeration_iter=EXAGGERATION_ITERS,
              random_state=0, n_jobs=2):
    """:func:`tsne_map` and its :func:`knn_preservation`, with the wall and CPU
    seconds they took and this process's peak resident memory (MiB)."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    Y = tsne_map(Z, knn_indices, knn_distances, n_iter, exaggeration_iter, random_state, n_jobs)
    preservation = knn_preservation(Z, Y, random_state=random_state)
    return Y, preservation, time.perf_counter() - t0, cpu_seconds() - c0, peak_rss_mb()


def worker_threads(n_rows, n_jobs):
    """Threads for a map of ``n_rows`` made beside the loader: one below WORKER_THREAD_ROWS."""
    return n_jobs if n_rows >= WORKER_THREAD_ROWS else 1


class MapWorker:
    """Makes maps in a second process while the loader goes on with the next stages.

    At hundreds of thousands of rows the t-SNE optimisation keeps about one
    core busy (its FFT step is serial) and so do most other stages, so on two
    cores the maps cost little wall time off the main line. A thread would
    not do: the optimisation holds the GIL. The worker exits with the loader
    (:mod:`lib.processes`) and is terminated if the load fails.

    Use as a context manager; :meth:`submit` queues a map, :meth:`result`
    waits for it and returns what :func:`timed_map` returns.
    """

    def __init__(self):
        with plain_main():
            self._pool = SPAWN.Pool(1, **orphan_guard())
        self._jobs = {}

    def submit(self, key, Z, knn_indices, knn_distances, n_iter=ITERS, exaggeration_iter=EXAGGERATION_ITERS,
               random_state=0, n_jobs=2):
        """Queue :func:`timed_map`, on :func:`worker_threads` threads."""
        self._jobs[key] = self._pool.apply_async(
            timed_map, (Z, knn_indices, knn_distances, n_iter, exaggeration_iter, random_state,
                        worker_threads(len(Z), n_jobs)))

    def result(self, key):
        return self._jobs.pop(key).get()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None and not self._jobs:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()
