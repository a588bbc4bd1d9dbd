"""`make loadtest`: concurrent browser sessions clicking through the app.

Starts the app on a database, opens ``--users`` tabs in Debian's headless
chromium (each tab its own Streamlit session; the tabs share the browser's
cache, as colleagues' browsers keep the app's scripts after a first visit;
``--fresh-browsers``: a new browser profile per session instead, every open
a first visit) and lets each, for ``--seconds``,
open a random page by URL (every page of :data:`PAGES`, with random models,
image IDs, clusters, outlier pages) or run a similar-images search by typing
a random image ID. Every action waits until Streamlit is idle and counts as
an error if it shows an exception or an error box, logs a console error or
page error, gets an HTTP error, or times out.

    python -m bench.loadtest                                   # 20 users, 2 min, full-scale db
    python -m bench.loadtest --db data/vehicles.duckdb --users 3 --seconds 15

Without ``--db`` the full-scale database of ``make bench`` is used
(``.bench/db-40671/vehicles.duckdb``), built first if missing: about 25 min
of loading on 2 cores after about 10 min of generating the data.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import store  # noqa: E402
from lib.queries import Explorer  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, IDLE_JS, TITLE, rss_mb, running_app  # noqa: E402

FULL_SCALE_VEHICLES = 40671
VIEWPORT = {"width": 1280, "height": 900}
# URL path -> query template; {model}, {image}, {cluster}, {page} are drawn per visit.
# A new page is one more line here.
PAGES = {
    "/": "",
    "/metrics": "model={model}",
    "/clusters": "model={model}&cluster={cluster}",
    "/similar": "model={model}&image={image}",
    "/outliers": "model={model}&page={page}",
    "/compare": "image={image}",
}
SEARCH = "similar-images search"  # the action that types an image ID into the Similar page
LINK_SHARE = 0.2  # share of actions (after the first) that open a shared link rather than click in the app
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
# Streamlit's frontend finds its server by asking for these under the page's own
# path first (e.g. /similar/_stcore/health) and then under its parent: the 404s
# of that probe are by design, not failures
PROBES = ("/_stcore/health", "/_stcore/host-config")


def base_path_probe(url, base):
    path = url.split("?")[0]
    return path.endswith(PROBES) and not path.startswith(base + "/_stcore/")


def log(msg):
    print(f"[loadtest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def full_scale_db(work=ROOT / ".bench"):
    """The full-scale database of ``make bench``, built (and its data generated) if missing."""
    from bench.__main__ import dataset, run_loader

    db = Path(work) / f"db-{FULL_SCALE_VEHICLES}" / "vehicles.duckdb"
    if store.resolve(db) is None:
        data, _ = dataset(Path(work), FULL_SCALE_VEHICLES)
        log(f"building {db} (about 25 min on 2 cores)")
        run_loader(data, db)
    return db


class Catalogue:
    """What random visits may ask for: models, image IDs, clusters, outlier pages."""

    def __init__(self, db, per_page=24):
        ex = Explorer(db)
        try:
            models = ex.models()
            self.models = list(models["model"])
            self.k = dict(zip(models["model"], models["chosen_k"].astype(int)))
            self.n_images = ex.n_images
        finally:
            ex.close()
        self.n_pages = (self.n_images + per_page - 1) // per_page

    def url(self, base, path, rng):
        model = rng.choice(self.models)
        query = PAGES[path].format(model=model, image=rng.randrange(self.n_images),
                                   cluster=rng.randrange(self.k[model]), page=rng.randrange(1, self.n_pages + 1))
        return base + path + ("?" + query if query else "")


async def settle(page, timeout_ms):
    """Wait for the title and 0.5 s of idleness; return the seconds of idleness waited beyond the work."""
    await page.wait_for_selector(TITLE, timeout=timeout_ms)
    await page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=100)
    return await page.evaluate("() => (performance.now() - window.__idleSince) / 1000")


STATE_JS = """() => {
    const q = (s) => document.querySelector(s);
    const app = q('[data-testid="stApp"]');
    const box = q('input[aria-label="Image ID"]');
    return JSON.stringify({script: app && app.getAttribute('data-test-script-state'),
        status: q('[data-testid="stStatusWidget"]') && q('[data-testid="stStatusWidget"]').innerText,
        skeleton: !!q('[data-testid="stSkeleton"]'), title: q('h1') && q('h1').innerText,
        box: box && box.value, url: location.href});
}"""


async def page_state(page):
    """What the page showed when an action failed (for the error report)."""
    try:
        return await asyncio.wait_for(page.evaluate(STATE_JS), 5)
    except Exception as e:
        return f"unreadable ({type(e).__name__})"


class Runs:
    """Counts the script runs the server reports finished to one page, read off its websocket.

    The DOM's running/not-running attribute misses fast runs (React may render
    both states in one commit), so a rerun is awaited on the server's own
    ``script_finished`` message instead.
    """

    def __init__(self, page):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.page = page
        self.done = 0
        self._msg = ForwardMsg
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload):
        if isinstance(payload, str):
            return
        msg = self._msg.FromString(payload)
        # a run cut short by st.rerun() is followed by the run that counts
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished != self._msg.FINISHED_EARLY_FOR_RERUN:
            self.done += 1

    async def after(self, trigger, timeout_ms):
        """Do ``trigger`` (a click, a key) and wait until the rerun it causes has finished."""
        before = self.done
        await self.page.evaluate("() => { window.__idleSince = null; }")  # settle() times idleness from here on
        await trigger()
        deadline = time.monotonic() + timeout_ms / 1000
        while self.done == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no script run finished within {timeout_ms / 1000:.0f} s")
            await asyncio.sleep(0.02)


async def user(n, browser, shared, base, cat, deadline, timeout_ms, seed, out):
    """One session until ``deadline``: opens a shared link, then clicks around; one record per action.

    Actions: ``open PATH`` (a deep link with random parameters: a new
    document, as when a colleague opens a shared URL; the first action and
    a share :data:`LINK_SHARE` after), ``click PATH`` (the sidebar link of
    that page: in-app navigation) and the similar-images search (a random
    image ID typed into the Similar page). ``shared``: the browser context
    to open a tab in, or None for a context of its own.
    """
    rng = random.Random(seed + n)
    ctx = shared or await browser.new_context(viewport=VIEWPORT)
    page = await ctx.new_page()
    runs = Runs(page)
    problems = []  # filled by the page's event handlers during an action
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text[:200]}")
            if m.type == "error" and not base_path_probe(m.location.get("url", ""), base) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 and not (r.status == 404 and base_path_probe(r.url, base)) else None)
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "")
            else problems.append(f"request failed: {r.failure} {r.url}"))
    opened = False
    while time.monotonic() < deadline:
        path = rng.choice(list(PAGES))
        kind = "open" if not opened or rng.random() < LINK_SHARE else rng.choice(["click", "click", "search"])
        action = SEARCH if kind == "search" else f"{kind} {path}"
        problems.clear()
        t0 = time.monotonic()
        try:
            if kind == "open":
                # "commit": the document started; settle() then waits for Streamlit itself
                await page.goto(cat.url(base, path, rng), wait_until="commit", timeout=timeout_ms)
                opened = True
            elif kind == "click":
                link = page.locator(f'[data-testid="stSidebarNavLink"][href$="{path}"]').first
                await runs.after(link.click, timeout_ms)
            else:
                if not page.url.split("?")[0].endswith("/similar"):
                    link = page.locator('[data-testid="stSidebarNavLink"][href$="/similar"]').first
                    await runs.after(link.click, timeout_ms)
                    await settle(page, timeout_ms)
                wanted = rng.randrange(cat.n_images)
                box = page.get_by_role("textbox", name="Image ID")
                await box.fill(str(wanted))
                t0 = time.monotonic()  # time the search itself, not the way to the page
                await runs.after(lambda: box.press("Enter"), timeout_ms)
                await page.get_by_text(f"query #{wanted}", exact=True).wait_for(timeout=timeout_ms)
            slack = await settle(page, timeout_ms)
            seconds = time.monotonic() - t0 - slack
            shown = await page.locator(ERROR_SELECTOR).count()
            if shown:
                problems.append(f"{shown} error element(s): " + (await page.locator(ERROR_SELECTOR).first.inner_text())[:200])
        except Exception as e:  # a timeout or a crashed page is an error of this action, the session goes on
            seconds = time.monotonic() - t0
            problems.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
            problems.append("state: " + await page_state(page))
            opened = False  # start again from a fresh document
        out.append({"user": n, "action": action, "url": page.url, "seconds": seconds, "errors": list(problems)})
    await (page if shared else ctx).close()


async def drive(base, cat, users, seconds, timeout_ms, seed, browser_cpu, fresh_browsers=False):
    """Warm the server, then run the sessions; ``browser_cpu['seconds']``: CPU the browser used meanwhile."""
    from playwright.async_api import async_playwright

    out = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # warm the server once (imports, first reads), as a deploy would be before users arrive
        shared = None if fresh_browsers else await browser.new_context(viewport=VIEWPORT)
        warm = await (shared or browser).new_page()
        for path in PAGES:
            await warm.goto(cat.url(base, path, random.Random(seed)), wait_until="commit", timeout=300000)
            await settle(warm, 300000)
        await warm.close()
        deadline = time.monotonic() + seconds
        t0, seen = time.monotonic(), {}
        browser_cpu["app_cpu0"] = cpu_seconds([base.pid])
        sampler = asyncio.create_task(sample_cpu(base.pid, seen))
        await asyncio.sleep(0.2)
        start = dict(seen)
        await asyncio.gather(*(user(n, browser, shared, base, cat, deadline, timeout_ms, seed, out)
                               for n in range(users)))
        sampler.cancel()
        browser_cpu["seconds"] = sum(seen.values()) - sum(start.values())
        browser_cpu["wall"] = time.monotonic() - t0
        await browser.close()
    return out


def cpu_seconds(pids):
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def descendants(pid):
    """Every process below ``pid`` (children, grandchildren, ...)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


async def sample_cpu(app_pid, seen, every=1.0):
    """Keep ``seen[pid]`` = CPU seconds of every process of ours but the app (renderers come and go)."""
    while True:
        app = {app_pid, *descendants(app_pid)}
        for pid in descendants(os.getpid()):
            if pid not in app:
                seen[pid] = max(seen.get(pid, 0.0), cpu_seconds([pid]))
        await asyncio.sleep(every)


def summarise(records, users, seconds, rss):
    """Counts and p50/p95 page times, overall and per action."""
    def stats(rs):
        t = np.array([r["seconds"] for r in rs if not r["errors"]])
        return {"served": len(rs), "errors": sum(1 for r in rs if r["errors"]),
                "p50_s": float(np.percentile(t, 50)) if len(t) else None,
                "p95_s": float(np.percentile(t, 95)) if len(t) else None}

    names = [f"{kind} {p}" for kind in ("open", "click") for p in PAGES] + [SEARCH]
    by_action = {a: stats([r for r in records if r["action"] == a]) for a in names}
    return {"users": users, "seconds": seconds, **stats(records), "by_action": by_action,
            "app_rss_mb": rss,
            "error_samples": [(f"{r['action']}: {r['url']}", r["errors"][:3]) for r in records if r["errors"]][:20]}


def markdown(res):
    """The figures as a Markdown table (for docs/RELIABILITY.md)."""
    def fmt(v):
        return "—" if v is None else f"{v:.2f}"

    L = ["| action | served | errors | p50 s | p95 s |", "|---|---:|---:|---:|---:|"]
    for a, s in res["by_action"].items():
        L.append(f"| {a} | {s['served']} | {s['errors']} | {fmt(s['p50_s'])} | {fmt(s['p95_s'])} |")
    L.append(f"| **all** | **{res['served']}** | **{res['errors']}** | **{fmt(res['p50_s'])}** | **{fmt(res['p95_s'])}** |")
    return "\n".join(L)


def run(db, users=20, seconds=120, timeout_s=90, seed=0, fresh_browsers=False):
    """Start the app on ``db``, drive ``users`` sessions for ``seconds``; return the summary dict."""
    cat = Catalogue(db)
    load_before = os.getloadavg()[0]
    with running_app(db, timeout=300) as base:
        log(f"app up at {base} (pid {base.pid}); {users} users for {seconds} s on {cat.n_images:,} images")
        browser_cpu = {}
        records = asyncio.run(drive(base, cat, users, seconds, timeout_s * 1000, seed, browser_cpu, fresh_browsers))
        rss = rss_mb(base.pid)
        app_cpu = cpu_seconds([base.pid]) - browser_cpu["app_cpu0"]
    res = summarise(records, users, seconds, rss)
    # where the machine's time went: the server, and (measured apart) everything else
    res["wall_s"], res["app_cpu_s"] = browser_cpu["wall"], app_cpu
    res["browser_cpu_s"] = browser_cpu.get("seconds")
    res["cores"], res["loadavg_before"], res["loadavg_after"] = os.cpu_count(), load_before, os.getloadavg()[0]
    res["rows"] = cat.n_images
    res["browsers"] = "a new browser profile per session" if fresh_browsers else "tabs of one browser"
    res["db"] = Path(str(store.resolve(db))).name
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="database to serve (default: the full-scale one, built if missing)")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--timeout", type=float, default=90, help="seconds before an action counts as timed out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-browsers", action="store_true",
                    help="a new browser profile (empty cache) per session instead of tabs of one browser")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--doc", help="rewrite the <!-- load --> section of this Markdown file (docs/RELIABILITY.md)")
    args = ap.parse_args(argv)
    db = Path(args.db) if args.db else full_scale_db()
    res = run(db, args.users, args.seconds, args.timeout, args.seed, args.fresh_browsers)
    res["command"] = "python -m bench.loadtest" + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))
    res["when"] = time.strftime("%Y-%m-%d %H:%M")
    print(markdown(res))
    print(f"app resident memory at the end: {res['app_rss_mb']:.0f} MiB")
    for url, errs in res["error_samples"]:
        print(f"  error at {url}: {'; '.join(errs)}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    if args.doc:
        from bench.reliability import replace_section

        replace_section(args.doc, "load", doc_section(res))
    return res


def doc_section(res):
    """The load figures as they appear in docs/RELIABILITY.md."""
    return (f"Made by `{res['command']}` on {res['when']}: {res['users']} concurrent sessions "
            f"({res['browsers']}) for {res['seconds']:.0f} s against `{res['db']}` ({res['rows']:,} images). "
            "Page time: from navigation (or the Enter key, for the search) until the page is drawn and "
            "Streamlit is idle.\n\n"
            + markdown(res) + f"\n\nApp resident memory at the end: **{res['app_rss_mb']:.0f} MiB**. "
            f"CPU over the {res['wall_s']:.0f} s of sessions, on {res['cores']} cores: the app server "
            f"{res['app_cpu_s']:.0f} s, the browser {res['browser_cpu_s']:.0f} s; machine load average "
            f"{res['loadavg_before']:.1f} before, {res['loadavg_after']:.1f} after.\n")


if __name__ == "__main__":
    sys.exit(1 if main()["errors"] else 0)
