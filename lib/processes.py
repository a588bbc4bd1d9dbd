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
    """``initializer`` and ``initargs`` for a pool whose workers exit with this process."""
    return dict(initializer=_exit_with_parent, initargs=(os.getpid(),))


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
