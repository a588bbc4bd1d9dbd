"""The first start: a demo database to look at within a minute, the rest computed behind it.

1. The demo dataset is generated if missing.
2. A first look is built on it (:data:`FIRST_LOOK`): the four models with
   KMeans, their neighbours, maps, outliers and thumbnails, so every page has
   its data. It is a complete build, published as any other.
3. The full default load (the other clustering algorithms, the combinations
   of models) starts in a background process; it reuses the first look's k
   sweeps, KMeans, neighbour tables and maps, which :mod:`lib.memo` kept by
   their inputs. It keeps a status file beside the database
   (:func:`status_path`) while it runs, publishes a new build when complete
   and then removes the file; the app shows the status (:func:`describe`) and
   picks up the new build.

A load that dies leaves the first look in place and its status file behind,
saying so; :func:`first_start` run again starts the full load anew.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import store
from .processes import alive
from .progress import Progress

# the stages every page needs, and nothing else; the maps run in a second process beside the k sweeps
FIRST_LOOK = dict(algorithms=("kmeans",), combinations=(), map_worker=True)
STILL_TO_COME = "the other clustering algorithms and the combinations of models"
DEMO_VEHICLES = 600
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def status_path(db_path):
    """The background load's status file beside the database link."""
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".loading.json")


def reuse_path(db_path):
    """Where the first look keeps its k sweeps, KMeans, neighbours and maps for the full load to reuse
    (:mod:`lib.memo`)."""
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".reuse")


def log_path(db_path):
    """Where the background load writes its terminal output."""
    db_path = Path(db_path)
    return db_path.parent / (db_path.name + ".loading.log")


def _write(path, status):
    tmp = Path(str(path) + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)  # a reader never sees half a file


class StatusProgress(Progress):
    """Reports every stage to ``inner`` and keeps the status file up to date.

    Parameters
    ----------
    path : str or Path
        The status file (see :func:`status_path`).
    inner : lib.progress.Progress, optional
        Where the stages are also shown (e.g. a terminal progress bar).
    """

    def __init__(self, path, inner=None):
        super().__init__()
        self.path = Path(path)
        self.inner = inner or Progress()
        self.status = {"pid": os.getpid(), "started": time.time(), "what": STILL_TO_COME}
        if self.path.exists():  # the starter's own record: keep its start time
            try:
                self.status["started"] = json.loads(self.path.read_text()).get("started", self.status["started"])
            except ValueError:
                pass
        self.records = self.inner.records  # one list of stage times, kept by the inner reporter
        self._write(stage="starting", model=None)

    def _write(self, **items):
        self.status.update(items, updated=time.time())
        _write(self.path, self.status)

    def start(self, name, total, model):
        self.inner.start(name, total, model)
        self._write(stage=name, model=model)

    def advance(self, n=1):
        self.inner.advance(n)

    def end(self, name, model, seconds):
        self.inner.end(name, model, seconds)

    def fail(self, name, model):
        self.inner.fail(name, model)

    def failed(self, message):
        """The load stopped on an error: say so in the status file, which stays."""
        self._write(failed=message)

    def finished(self):
        """The build is published: the status file goes."""
        self.path.unlink(missing_ok=True)


def background_status(db_path):
    """The background load's status, or None when none runs or is left unfinished.

    Returns
    -------
    dict or None
        ``pid, started, stage, model, what`` and ``running`` (its process is
        alive), ``failed`` (an error message) when it stopped on one.
    """
    path = status_path(db_path)
    try:
        status = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    status["running"] = "failed" not in status and alive(status.get("pid"))
    return status


def describe(status, now=None):
    """One paragraph for the pages about a background load (``status`` from :func:`background_status`)."""
    now = time.time() if now is None else now
    minutes, seconds = divmod(int(max(0.0, now - status.get("started", now))), 60)
    since = f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
    what = status.get("what", STILL_TO_COME)
    if status["running"]:
        stage = status.get("stage") or "starting"
        if status.get("model"):
            stage = f"{stage} of {status['model']}"
        return (f"Still computing in the background: {what} (now: {stage}; started {since} ago). "
                "The pages show KMeans on each model until then and fill in by themselves when it is done.")
    why = f"it failed: {status['failed']}" if status.get("failed") else "its process is gone"
    return (f"The background load of {what} stopped before it finished ({why}). The pages show KMeans on "
            f"each model. Its output is in `{status.get('log', 'the log beside the database')}`; "
            "start it again with `make run` or `python -m lib first-start`.")


def start_full_load(data_dir, db_path):
    """Start the full default load of ``data_dir`` in a background process.

    It runs at a lower priority (``nice``) so that the app stays quick, in a
    session of its own so that stopping the app does not stop it, and
    writes its output to :func:`log_path`.

    Returns
    -------
    subprocess.Popen
    """
    status, log = status_path(db_path), log_path(db_path)
    cmd = [sys.executable, "-m", "lib", "load", str(data_dir), "--db", str(db_path), "--status", str(status),
           "--reuse", str(reuse_path(db_path))]
    if shutil.which("nice"):
        cmd = ["nice", "-n", "10", *cmd]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=PACKAGE_ROOT, start_new_session=True)
    # written before the child's first word, so that the pages say so from the start
    _write(status, {"pid": proc.pid, "started": time.time(), "stage": "starting", "model": None,
                    "what": STILL_TO_COME, "log": str(log), "updated": time.time()})
    return proc


def first_start(demo_dir, db_path, n_vehicles=DEMO_VEHICLES, progress=None, background=True, random_state=0):
    """Make sure there is a database to show, and that the full one is on its way.

    Parameters
    ----------
    demo_dir : str or Path
        The demo dataset's folder; generated when it has no ``images_paths.csv``.
    db_path : str or Path
        The database link.
    n_vehicles : int
        Vehicles of a newly generated demo (about 10 photos each).
    progress : lib.progress.Progress, optional
    background : bool
        Start the full load in the background after the first look.
    random_state : int

    Returns
    -------
    str
        What was done: ``"built"`` (first look built), ``"resumed"`` (a full
        load that had stopped was started again) or ``"ready"`` (nothing to do).
    """
    demo_dir, db_path = Path(demo_dir), Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # one first start at a time: two visitors of a new hosted app would otherwise build it twice
    with open(db_path.parent / (db_path.name + ".first-start.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _first_start(demo_dir, db_path, n_vehicles, progress, background, random_state)


def _first_start(demo_dir, db_path, n_vehicles, progress, background, random_state):
    from . import demo, pipeline

    status = background_status(db_path)
    if store.resolve(db_path) is not None:
        if status is not None and not status["running"] and background:
            start_full_load(demo_dir, db_path)
            return "resumed"
        return "ready"
    prog = progress or Progress()
    if not (demo_dir / "images_paths.csv").exists():
        with prog.stage("render demo dataset"):
            demo.generate(demo_dir, n_vehicles=n_vehicles, seed=random_state)
    pipeline.load(demo_dir, db_path, pipeline.LoadConfig(random_state=random_state, reuse_dir=str(reuse_path(db_path)),
                                                        **FIRST_LOOK), prog)
    if background:
        start_full_load(demo_dir, db_path)
    return "built"
