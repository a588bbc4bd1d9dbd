"""Running the app under ``streamlit run`` and driving Debian's chromium (shared by tests and benchmarks)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# where the browser tests save their screenshots: an ignored folder, so `make test` leaves the clone clean;
# `make screenshots` points it at docs/screenshots/ (the README's pictures)
SCREENSHOT_DIR = ROOT / os.environ.get("SCREENSHOT_DIR", ".test-output/screenshots")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppURL(str):
    """The app's base URL; ``pid`` is the server's process id (for its memory)."""

    pid = None


def rss_mb(pid):
    """Resident memory of a process in MiB (Linux), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@contextmanager
def running_app(db_path, timeout=90, env=None):
    """Start ``streamlit run streamlit_app.py`` on a free port; yield its base URL (an :class:`AppURL`).

    ``env``: extra environment variables for the server (e.g. a HOME whose
    ``.streamlit/secrets.toml`` sets a password).
    """
    port = free_port()
    env = dict(os.environ, VEHICLE_DB=str(db_path), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = AppURL(f"http://127.0.0.1:{port}")
    base.pid = proc.pid
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("app did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def missing_browser(module="playwright.sync_api"):
    """Why the browser tests cannot run here (no chromium, or no Playwright), or None."""
    import importlib

    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get install -y chromium)"
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{module} cannot be imported ({e}): `make venv` installs Playwright"
    return None


def require_browser(module="playwright.sync_api"):
    """For a browser test module, at import: outside CI a missing chromium or Playwright skips the module
    (with the reason); under ``CI=true`` nothing is skipped for a tool `make test` installs, so the reason
    is returned for the module's autouse fixture (:func:`fail_without_browser`) to fail every test with."""
    import pytest

    missing = missing_browser(module)
    if missing and os.environ.get("CI") != "true":
        pytest.skip(missing, allow_module_level=True)
    return missing


def fail_without_browser(missing):
    import pytest

    if missing:
        pytest.fail(f"{missing} (CI=true: the browser tests fail rather than skip)", pytrace=False)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


TITLE = '[data-testid="stMain"] h1'
IMAGES_JS = """Array.from(document.querySelectorAll('[data-testid="stImage"] img'))"""  # the page's pictures
# true once Streamlit has shown no running/skeleton marker for 0.5 s
IDLE_JS = """() => {
    const busy = document.querySelector('[data-testid="stStatusWidget"]')
        || document.querySelector('[data-testid="stSkeleton"]');
    if (busy) { window.__idleSince = null; return false; }
    window.__idleSince = window.__idleSince || performance.now();
    return performance.now() - window.__idleSince > 500;
}"""


def wait_rendered(page, timeout=60000):
    """Wait until the page shows its title and Streamlit has stopped running the script.

    Returns the seconds from the document's navigation start until it went
    idle (the 0.5 s of idleness used to confirm it is not counted).
    """
    page.wait_for_selector(TITLE, timeout=timeout)
    page.wait_for_function(IDLE_JS, timeout=timeout, polling=100)
    return page.evaluate("() => window.__idleSince") / 1000
