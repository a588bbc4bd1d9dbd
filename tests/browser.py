"""Running the app under ``streamlit run`` and driving Debian's chromium (shared by tests and benchmarks)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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


def healthy(base):
    """Whether the Streamlit server at ``base`` answers its health check."""
    try:
        with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


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
        while not healthy(base):
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
    page.evaluate("() => { window.__idleSince = null; }")  # idleness before this call (an earlier run) does not count
    page.wait_for_function(IDLE_JS, timeout=timeout, polling=100)
    return page.evaluate("() => window.__idleSince") / 1000


# what the browser tests and benchmarks do on a page

def visit(page, url):
    page.goto(url)
    wait_rendered(page)
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]


def shot(page, name):
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def loaded_images(page, timeout=30000, at_least=0):
    """How many images on the page show a picture, once none is still loading (a broken one counts 0).

    ``at_least`` waits (up to ``timeout``) for that many pictures to be drawn first: a rerun can
    look idle while its later elements are still on their way."""
    page.wait_for_function(f"() => {IMAGES_JS}.filter(i => i.complete && i.naturalWidth > 0).length >= {at_least}"
                           f" && {IMAGES_JS}.every(i => i.complete)", timeout=timeout, polling=100)
    return page.evaluate(f"() => {IMAGES_JS}.filter(i => i.naturalWidth > 0).length")


def map_box(page):
    page.wait_for_selector('[data-testid="stVegaLiteChart"] canvas', timeout=30000)
    return page.locator('[data-testid="stVegaLiteChart"]').first.bounding_box()


def point_under_mouse(page, box):
    """Move the mouse over the map until Vega's tooltip names an image; return (x, y, image_id)."""
    tip = page.locator("#vg-tooltip-element")
    for fy in [i / 24 for i in range(5, 20)]:
        for fx in [i / 24 for i in range(5, 20)]:
            x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
            page.mouse.move(x, y)
            try:
                page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                       " return t && t.classList.contains('visible') }", timeout=150)
            except Exception:
                continue
            text = tip.inner_text()
            if "image_id" in text:
                return x, y, int(text.split("image_id")[1].split()[0])
    raise AssertionError("no point of the map showed a tooltip")


def picker_and_card_agree(page, ex, model, timeout=30):
    """Wait until the cluster picker's label and the card below it show the same cluster of ``model``
    (a label left from the previous model never does: the wait runs out and says what it saw)."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        box = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first
        label = " ".join(i.input_value() for i in box.locator("input").all())
        card = page.locator('[data-testid="stMetric"]').first.inner_text().split("\n")[-1]
        shown = re.search(r"(-?\d+)[^:]*: ([\d,]+) images", label)
        cluster = parse_qs(urlparse(page.url).query).get("cluster", [None])[0]
        seen = (label, card, cluster)
        if shown and cluster == shown.group(1):
            size = int(ex.clusters(model).set_index("cluster").loc[int(cluster), "size"])
            if shown.group(2) == card == f"{size:,}":
                return
        page.wait_for_function(IDLE_JS, timeout=timeout * 1000, polling=100)
    raise AssertionError(f"picker, card and link disagree under {model}: {seen}")


SHOWN_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const values = Array.from(main.querySelectorAll('input, textarea')).map(
        i => i.type === 'checkbox' ? String(i.checked) : i.value);
    const side = Array.from(document.querySelectorAll('[data-testid="stSidebar"] input')).map(i => i.value);
    const pics = Array.from(main.querySelectorAll('[data-testid="stImageCaption"]')).map(c => c.innerText);
    return {text: main.innerText, values, side, pics};
}"""


def full_links(ex):
    """Every page with every parameter it takes set to something other than its default."""
    from lib import mapview

    b = mapview.extent(ex, "vdc_color")
    view = mapview.zoom_around(b, (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, 0.6)
    region = mapview.zoom_around(b, (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, 0.3)
    return [
        f"?model=vdc_type&algo={ex.algorithms('vdc_type')[-1]}",
        "metrics?model=osnet",
        f"clusters?model=vdc_color&algo=kmeans&cluster=3&view={view.text()}&region={region.text()}&image=5",
        "similar?model=vdc_type&algo=kmeans&image=42&n=8&frames=1",
        f"outliers?model=consensus&page=2&flagged=0&unreviewed=1&cmodel=vdc_color&cluster=1"
        f"&map=vdc_color&region={b.text()}",
        "outliers?model=osnet&page=1&cause=lof",
        "compare?image=42&measure=nmi",
    ]


def settled(page, timeout=60):
    """What the page shows (:data:`SHOWN_JS`) once two reads, each after half a second of idleness, agree:
    at scale a page can look idle between two of its own reruns, before its pictures are drawn."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        page.wait_for_function(IDLE_JS, timeout=timeout * 1000, polling=100)
        now = page.evaluate(SHOWN_JS)
        if now == last:
            return now
        last = now
        page.evaluate("() => { window.__idleSince = null; }")  # the next read needs a fresh 0.5 s of idleness
    raise AssertionError(f"the page kept changing for {timeout} s: {str(last)[:300]}")
