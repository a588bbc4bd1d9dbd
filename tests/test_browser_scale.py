"""The app in chromium on a database past 50,000 images: what is fine at 2,500 images can be wrong at scale.

The database is built once by the CLI, as a user builds one (the demo, then the loader with fewer
algorithms and a shorter map fit so the suite stays in budget), and cached in the ignored data folder
under the schema version; a database another loader version built would say so on every page, and the
test that no page shows an error would fail.
"""
import math
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from lib import images

from .browser import (fail_without_browser, full_links, launch, loaded_images, picker_and_card_agree,
                      require_browser, running_app, settled, visit)

pytestmark = pytest.mark.browser
MISSING = require_browser("playwright.sync_api")
ROOT = Path(__file__).resolve().parent.parent
VEHICLES = 4920  # 50,102 images: past the loader's sampling sizes and its side process for the maps
LOAD_ARGS = ["--algorithms", "kmeans", "--combine", "none", "--k-max", "12", "--map-iters", "200"]


@pytest.fixture(scope="module", autouse=True)
def browser_installed():
    fail_without_browser(MISSING)


@pytest.fixture(scope="module")
def scale_db():
    from lib import store

    home = ROOT / "data" / f"test-scale-{VEHICLES}-schema{store.SCHEMA_VERSION}"
    db = home / "vehicles.duckdb"
    if not db.exists():
        data = home / "data"
        if not (data / "images_paths.csv").exists():
            subprocess.run([sys.executable, "-m", "lib", "demo", str(data), "--vehicles", str(VEHICLES)],
                           cwd=ROOT, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "lib", "load", str(data), "--db", str(db), *LOAD_ARGS],
                       cwd=ROOT, check=True, capture_output=True)
    return db


@pytest.fixture(scope="module")
def app(scale_db, tmp_path_factory):
    from playwright import sync_api

    from lib import store
    from lib.queries import Explorer

    link = tmp_path_factory.mktemp("scale") / "vehicles.duckdb"  # reviews beside this link, not the cache's
    store.publish(link, store.resolve(scale_db))
    ex = Explorer(scale_db)
    with running_app(link, timeout=180) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield base, page, errors, ex, browser
        browser.close()


def main_text(page):
    return page.locator('[data-testid="stMain"]').inner_text()


def test_the_database_is_past_50000_images(app):
    base, page, errors, ex, _ = app
    assert ex.n_images >= 50_000
    visit(page, f"{base}/")
    assert f"{ex.n_images:,}" in main_text(page)
    assert "older" not in main_text(page) and not errors


def test_every_page_opens_on_the_evidence_and_says_it(app):
    base, page, errors, ex, _ = app
    groups, why_groups = ex.recommended("groups")
    neighbours, why_neighbours = ex.recommended("neighbours")
    for path, model, why in (("clusters", groups, why_groups), ("similar?image=7", neighbours, why_neighbours),
                             ("metrics", groups, why_groups)):
        visit(page, f"{base}/{path}")
        assert parse_qs(urlparse(page.url).query)["model"] == [model]
        assert f"{model}: {why}" in page.locator('[data-testid="stSidebar"]').inner_text()
    visit(page, f"{base}/outliers")
    flagged = math.ceil(len(ex.outlier_entries("consensus")) * 0.01)
    text = main_text(page)
    assert "Outliers: consensus" in text and f"0 of {flagged:,} flagged entries reviewed" in text
    assert f"of {flagged:,} flagged entries" in text
    assert loaded_images(page) >= 24
    visit(page, f"{base}/compare?image=7")
    assert loaded_images(page) > 6 * len(ex.model_names())
    assert not errors


def test_the_map_at_scale_counts_every_image_and_draws_a_sample(app):
    base, page, errors, ex, _ = app
    for model in ex.model_names():
        visit(page, f"{base}/clusters?model={model}")
        caption = main_text(page)
        assert f"t-SNE map: {ex.n_images:,} images in this view" in caption
        drawn = int(caption.split(" drawn as points")[0].rsplit("; ", 1)[1].replace(",", ""))
        assert 5_000 < drawn < 7_000  # a sample the browser can draw, not every image
        page.wait_for_selector('[data-testid="stVegaLiteChart"] canvas', timeout=60000)
        picker_and_card_agree(page, ex, model)
        names = set(ex.clusters(model)["color_name"].dropna())
        assert names <= set(images.COLOR_NAMES) | {images.MIXED}
        if model == "vdc_color":  # the colour model's clusters are colours, named as the cars are painted
            assert len(names - {images.MIXED}) >= 5
    assert not errors


def test_a_shared_link_shows_the_same_at_scale(app):
    base, page, errors, ex, browser = app
    for link in full_links(ex):
        visit(page, f"{base}/{link}")
        loaded_images(page)
        seen = settled(page)
        assert "Ignored" not in seen["text"], (link, seen["text"][:300])
        colleague = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        visit(colleague, page.evaluate("() => location.href"))
        loaded_images(colleague)
        assert settled(colleague) == seen, link
        colleague.context.close()
    assert not errors
