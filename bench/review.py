"""How long a reviewer takes: verdicts for the first N flagged entries, three ways, in Debian's chromium.

- one at a time: a click on each tile's verdict, a click on the page control after each page;
- keyboard: one key per entry (F gives *fine* to the highlighted entry and moves to the next unreviewed,
  across pages);
- bulk: *One verdict for many entries*, ranks 1 to N, *fine*, *Give it*.

Each way starts from no verdicts (its own throwaway reviews file beside a temporary link to the
database), counts the user's actions (a click, a key press, a typed value) and the seconds until the
progress line says N reviewed, and then reads the reviews file to check N verdicts were stored.

    python -m bench.review --db .bench/db-40671/vehicles.duckdb --verdicts 200
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import reviews, store  # noqa: E402
from lib.reviews import Reviews  # noqa: E402
from tests.browser import launch, running_app, wait_rendered  # noqa: E402

WAYS = ("one at a time", "keyboard", "bulk")
PER_PAGE = 24  # pages/outliers.py


PROGRESS_JS = """() => { const p = Array.from(document.querySelectorAll('[data-testid="stProgress"]'))
        .map(e => e.innerText).join(' ');
    const m = p.match(/([\\d,]+) of [\\d,]+ flagged entries reviewed/);
    return m ? parseInt(m[1].replace(/,/g, '')) : -1; }"""


def reviewed(page, n, timeout=120000):
    """Wait until the progress line says at least ``n`` flagged entries are reviewed."""
    page.wait_for_function(f"n => ({PROGRESS_JS})() >= n", arg=n, timeout=timeout, polling=100)


def one_at_a_time(page, n):
    from playwright.sync_api import TimeoutError

    actions = 0
    done = 0
    while done < n:
        tiles = page.locator('div[class*="st-key-tile-"] [data-testid="stButtonGroup"]')
        for i in range(min(PER_PAGE, n - done)):
            fine = tiles.nth(i).get_by_role("radio", name="fine")
            while True:  # a click lost while the page still ran is clicked again (a second would undo a kept one)
                if fine.get_attribute("aria-checked") != "true":
                    fine.click()
                    actions += 1
                try:
                    reviewed(page, done + 1, timeout=10000)
                    break
                except TimeoutError:
                    continue
            done += 1
            wait_rendered(page)  # the page settles before the next click, as for a person
        if done < n:
            page.locator('[data-testid="stNumberInputStepUp"]').first.click()
            actions += 1
            wait_rendered(page)
    return actions


def keyboard(page, n):
    """F until ``n`` entries have a verdict. A key pressed while the page is still running its last
    rerun can be lost (Streamlit's shortcut needs the button drawn); a person presses again, and so
    does this, counting every press."""
    from playwright.sync_api import TimeoutError

    presses = 0
    while (have := page.evaluate(PROGRESS_JS)) < n:
        page.keyboard.press("f")
        presses += 1
        try:
            reviewed(page, have + 1, timeout=5000)
        except TimeoutError:
            continue
        wait_rendered(page)
    return presses


def bulk(page, n):
    actions = 0
    page.get_by_text("One verdict for many entries").click()
    page.locator(".st-key-bulk_scope").get_by_text("ranks", exact=True).click()
    actions += 2
    wait_rendered(page)
    for key, value in (("bulk_from", "1"), ("bulk_to", str(n))):
        box = page.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
        actions += 1  # one typed value
        wait_rendered(page)
    page.locator(".st-key-bulk_verdict").get_by_text("fine", exact=True).click()
    wait_rendered(page)
    page.locator(".st-key-bulk_give button").click()
    return actions + 2


def measure(db, verdicts=200, ways=WAYS):
    """``{way: {"verdicts", "actions", "seconds", "seconds_per_verdict", "stored"}}``.

    ``verdicts`` flagged entries, or all of them when there are fewer.
    """
    from playwright.sync_api import sync_playwright

    from lib.queries import Explorer

    ex = Explorer(db)
    verdicts = min(verdicts, len(ex.outlier_entries("consensus", flagged_only=True)))
    ex.close()
    out = {}
    for way in ways:
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / "vehicles.duckdb"
            store.publish(link, store.resolve(Path(db)))
            with running_app(link, timeout=180) as base, sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/outliers?model=consensus")
                # the page writes its state into the link, which runs it once more: wait for both
                page.wait_for_function("() => location.search.includes('page=')", timeout=180000)
                wait_rendered(page, timeout=180000)
                start = time.perf_counter()
                actions = {"one at a time": one_at_a_time, "keyboard": keyboard, "bulk": bulk}[way](page, verdicts)
                reviewed(page, verdicts, timeout=600000)
                seconds = time.perf_counter() - start
                browser.close()
            stored = sum(v == "fine" for v, _ in Reviews(reviews.default_path(link)).verdicts().values())
        out[way] = {"verdicts": verdicts, "actions": actions, "seconds": seconds, "seconds_per_verdict": seconds / verdicts,
                    "stored": int(stored)}
        print(f"[review] {way}: {actions} actions, {seconds:.1f} s, {stored} verdicts stored", flush=True)
    return out


def section(res):
    """The Markdown section of the report; ``res``: ``{"verdicts": n, "ways": measure()'s answer}``."""
    L = [f"## Review\n\nVerdicts for the first {res['verdicts']} flagged entries of the consensus ranking in "
         "Debian's chromium (`bench/review.py`), each way from no verdicts; actions = clicks, key presses "
         "and typed values; seconds until the progress line says they are reviewed; stored = verdicts read "
         "back from the reviews file:\n",
         "| way | actions | seconds | s per verdict | stored |\n|---|---:|---:|---:|---:|"]
    for way, f in res["ways"].items():
        L.append(f"| {way} | {f['actions']} | {f['seconds']:.1f} | {f['seconds_per_verdict']:.2f} | {f['stored']} |")
    L.append("")
    return L


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--verdicts", type=int, default=200)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    res = measure(args.db, args.verdicts)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
