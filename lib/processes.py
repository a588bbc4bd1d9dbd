"""Worker processes of the loader: thumbnails in parallel, maps alongside.

Spawned, never forked: by the time they start, the loader runs BLAS, numba
and DuckDB thread pools, which a fork would copy mid-state. A worker exits
when the loader does: a SIGKILLed loader cannot stop its pool, and a worker
left behind would wait for work, or finish a map, for nobody.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import types
from contextlib import contextmanager

SPAWN = multiprocessing.get_context("spawn")
# OpenMP threads (numba's in pynndescent, scikit-learn's, openTSNE's) spin at a barrier for a while
# before they sleep. The loader and its map or thumbnail workers share two cores, so a spinning thread
# holds the core its partner needs. Told to sleep at once, pynndescent on osnet (414,575 rows) beside the
# vdc_type map took 63 s wall / 64 s CPU against 71 / 85, the map 101 CPU-s against 105; the thumbnails
# beside that map 90 s against 106, the map 96 CPU-s against 110; pynndescent alone 32 s either way;
# the foundation load 804 s against 939 (874 s in a second run; docs/BENCHMARKS.md). A value the user set is kept.
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def alive(pid):
    """Whether process ``pid`` still runs (None: unknown, counted as running)."""
    if pid is None:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphan_guard():
    """``initializer`` and ``initargs`` for a pool whose workers exit with this process.

    The initializer also sets :data:`THREAD_ENV` (it runs before a task
    imports a library that reads it).
    """
    return dict(initializer=_worker_start, initargs=(os.getpid(),))


def share_cores():
    """Set :data:`THREAD_ENV` where unset: call before numba, scikit-learn or openTSNE is imported."""
    for name, value in THREAD_ENV.items():
        os.environ.setdefault(name, value)


def _worker_start(parent_pid):
    share_cores()
    _exit_with_parent(parent_pid)


@contextmanager
def plain_main():
    """Start workers inside this: they import only what their tasks need.

    A spawned child re-runs the parent's ``__main__`` module by path. Under
    Streamlit (the app building its first database) or AppTest, ``__main__``
    is a page script, which the child would run, and fail on, before any task.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _exit_with_parent(parent_pid):
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
