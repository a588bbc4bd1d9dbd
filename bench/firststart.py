"""A new user's first start, timed: part ``firststart`` of `make bench`, or `python -m bench.firststart`.

Clones this repository's HEAD into a temporary folder, links the project's
installed ``.venv`` into it (dependencies already installed, as issue 15
states the target), runs ``make run`` there and measures, from the moment
``make run`` starts:

- the server answering its health check;
- a complete Overview in Debian's chromium (title, the models table, idle);
- the background full load landing (its status file gone, every page's data
  including the other algorithms and the combinations).

Its peer in the same run: the full default load of the same demo in the
foreground (``python -m lib load``), which is what the first start waited
for before it came in two steps.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import free_port, healthy, launch, wait_rendered  # noqa: E402

MODELS_TABLE = '[data-testid="stDataFrame"]'


def _until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"error: no {what} within {seconds} s")
        time.sleep(0.25)


def first_start(work, vehicles=600, timeout=900):
    """Time ``make run`` in a fresh clone under ``work`` (a demo of ``vehicles``); returns the figures in seconds."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    os.symlink(ROOT / ".venv", clone / ".venv")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with open(work / "make-run.log", "wb") as log:  # the child keeps its own copy of the handle
        proc = subprocess.Popen(["make", "run", f"PORT={port}", f"DEMO_VEHICLES={vehicles}"], cwd=clone, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    out = {}
    try:
        _until(lambda: healthy(base) or proc.poll() is not None, timeout, "server")
        if proc.poll() is not None:
            raise SystemExit(f"error: make run exited {proc.returncode}; see {work / 'make-run.log'}")
        out["server_s"] = time.perf_counter() - t0
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(base + "/")
            wait_rendered(page, timeout=timeout * 1000)
            page.wait_for_selector(MODELS_TABLE, timeout=60000)
            out["overview_s"] = time.perf_counter() - t0
            out["overview_text"] = page.inner_text('[data-testid="stMain"]')[:400]
            status = clone / "data" / "vehicles.duckdb.loading.json"
            _until(lambda: not status.exists(), timeout, "end of the background load")
            out["full_s"] = time.perf_counter() - t0
            page.goto(base + "/compare")
            wait_rendered(page, timeout=120000)
            body = page.inner_text('[data-testid="stMain"]')
            out["compare_has_combinations"] = "vdc_type+vdc_color" in body
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    from lib import store

    db = clone / "data" / "vehicles.duckdb"
    with store.connect(db) as con:
        out["images"] = int(con.execute("SELECT value FROM meta WHERE key = 'n_images'").fetchone()[0])
        out["background_load_s"] = float(con.execute("SELECT value FROM meta WHERE key = 'load_seconds'").fetchone()[0])
    return out


def peer_full_load(demo_dir, work):
    """The full default load of the same demo in the foreground: what the first start waited for before."""
    t = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "lib", "load", str(demo_dir), "--db",
                    str(work / "peer.duckdb")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(vehicles=600, peer=True):
    """The first start's figures (see the module's docstring), with the peer unless ``peer`` is False."""
    with tempfile.TemporaryDirectory(prefix="firststart-") as tmp:
        work = Path(tmp)
        res = first_start(work, vehicles)
        if peer:
            res["peer_full_load_s"] = peer_full_load(work / "clone" / "data" / "demo", work)
    res["vehicles"] = vehicles
    res["load_average"] = os.getloadavg()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.firststart", description=__doc__.split("\n")[0])
    ap.add_argument("--vehicles", type=int, default=600, help="the demo's vehicles (make run's default: 600)")
    ap.add_argument("--no-peer", action="store_true", help="skip the foreground full load")
    args = ap.parse_args(argv)
    res = measure(args.vehicles, not args.no_peer)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
