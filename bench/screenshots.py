"""README's pictures taken on a full-scale database: `python -m bench.screenshots --db PATH`.

Opens every page in Debian's chromium, as a user does, on the database
given (README's are of the 414,575-image demo), and saves the shots to
``docs/screenshots/full/``. Verdicts given for the review shots go to a
throwaway reviews file beside a temporary link to the database, never to
the database's own reviews.

    python -m bench.screenshots --db .bench/db-40671/vehicles.duckdb
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import mapview, store  # noqa: E402
from lib.queries import Explorer  # noqa: E402
from tests.browser import launch, running_app, wait_rendered  # noqa: E402

OUT = ROOT / "docs" / "screenshots" / "full"


def shoot(page, url, name, out, then=None):
    t = time.perf_counter()
    page.goto(url)
    wait_rendered(page, timeout=180000)
    if then:
        then(page)
        wait_rendered(page, timeout=180000)
    page.wait_for_function("() => Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
                           ".every(i => i.complete)", timeout=60000)
    page.screenshot(path=str(out / f"{name}.png"))
    print(f"{name}: {time.perf_counter() - t:.1f} s  {url}", flush=True)


def review_with_keys(page):
    """Three verdicts from the keyboard and one bulk verdict for ranks 4-24, so the progress line moves."""
    for key in ("o", "f", "u"):
        page.keyboard.press(key)
        wait_rendered(page)
    page.get_by_text("One verdict for many entries").click()
    page.locator(".st-key-bulk_scope").get_by_text("ranks", exact=True).click()
    wait_rendered(page)
    for key, value in (("bulk_from", "4"), ("bulk_to", "24")):
        box = page.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
        wait_rendered(page)
    page.locator(".st-key-bulk_verdict").get_by_text("fine", exact=True).click()
    wait_rendered(page)
    page.locator(".st-key-bulk_give button").click()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the database (a link made by the loader) to show")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ex = Explorer(args.db)
    b = mapview.extent(ex, "vdc_color")
    region = mapview.zoom_around(b, b.x0 + (b.x1 - b.x0) * 0.35, b.y0 + (b.y1 - b.y0) * 0.6, 0.22)
    vehicle = ex.image(42)["vehicle_id"]
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "vehicles.duckdb"  # the reviews go beside this link, and away with it
        store.publish(link, store.resolve(Path(args.db)))
        with running_app(link, timeout=180) as base, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            shoot(page, f"{base}/", "overview", out)
            shoot(page, f"{base}/metrics?model=vdc_type", "metrics", out)
            shoot(page, f"{base}/clusters?model=vdc_color", "clusters", out)
            shoot(page, f"{base}/clusters?model=vdc_color&region={region.text()}", "clusters-region", out)
            near = mapview.zoom_around(mapview.extent(ex, "vdc_type"), *mapview.locate(ex, "vdc_type", 42), 0.3)
            shoot(page, f"{base}/clusters?model=vdc_type&image=42&view={near.text()}", "clusters-picked", out)
            shoot(page, f"{base}/similar?model=osnet&image=42", "similar", out)
            shoot(page, f"{base}/similar?model=osnet&image=v{vehicle}", "search-vehicle", out)
            shoot(page, f"{base}/outliers", "outliers", out)
            shoot(page, f"{base}/outliers", "outliers-review", out, then=review_with_keys)
            shoot(page, f"{base}/outliers?model=consensus&map=vdc_color&region={region.text()}&flagged=0",
                  "outliers-region", out)
            shoot(page, f"{base}/compare?image=42", "compare", out)
            browser.close()


if __name__ == "__main__":
    main()
