"""Real-browser tests: Debian's chromium, driven by Playwright, against `streamlit run`.

Saves a screenshot of every page to browser.SCREENSHOT_DIR: an ignored folder under `make test`,
docs/screenshots/ (shown in README) under `make screenshots`.
"""

from urllib.parse import parse_qs, urlparse

import pytest

from .browser import (fail_without_browser, full_links, launch, loaded_images, map_box,
                      picker_and_card_agree, point_under_mouse, require_browser, running_app, settled, shot,
                      visit, wait_rendered)

pytestmark = pytest.mark.browser
MISSING = require_browser("playwright.sync_api")  # skips outside CI; under CI=true every test fails with it


@pytest.fixture(scope="module", autouse=True)
def browser_installed():
    fail_without_browser(MISSING)


@pytest.fixture(scope="module")
def browser_page(demo_db, tmp_path_factory):
    from playwright import sync_api

    from lib import store

    db = tmp_path_factory.mktemp("browser") / "vehicles.duckdb"  # reviews go beside this link
    store.publish(db, store.resolve(demo_db[0]))
    with running_app(db) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield base, page, errors
        browser.close()


def test_shared_similar_link_opened_first(browser_page):
    # a fresh server's first request is a deep link, as when a colleague opens a shared URL
    base, page, errors = browser_page
    visit(page, f"{base}/similar?image=42&model=osnet")
    assert page.locator('[data-testid="stSidebarNavLink"]').count() == 6  # st.navigation, not legacy pages
    assert page.get_by_text("query #42").count() == 1
    assert loaded_images(page) == 13
    assert "image=42" in page.url and "model=osnet" in page.url
    shot(page, "similar")
    # clicking a neighbour's button makes it the query and the URL follows
    page.get_by_role("button", name="search from here").first.click()
    page.wait_for_function("() => !location.search.includes('image=42')")
    wait_rendered(page)
    assert loaded_images(page) == 13
    box = page.get_by_role("textbox", name="Image ID")
    for wanted in (7, 8, 9):  # one typed search after another, each shows its own query
        box.fill(str(wanted))
        box.press("Enter")
        page.get_by_text(f"query #{wanted}", exact=True).wait_for(timeout=30000)
        wait_rendered(page)
        assert f"image={wanted}" in page.url and box.input_value() == str(wanted)
    assert not errors


@pytest.mark.parametrize("path, name, min_images", [
    ("", "overview", 0), ("metrics?model=vdc_type", "metrics", 0),
    ("clusters?model=vdc_color", "clusters", 24), ("outliers?model=consensus", "outliers", 24),
    ("compare?image=42", "compare", 37)])
def test_page_renders(browser_page, path, name, min_images):
    base, page, errors = browser_page
    visit(page, f"{base}/{path}")
    assert page.locator("h1").first.inner_text()
    assert loaded_images(page) >= min_images
    if name in ("overview", "metrics", "clusters", "compare"):
        page.wait_for_selector("canvas, svg.marks", timeout=30000)  # the Vega chart drew
    shot(page, name)
    assert not errors


def test_map_region_and_click_lead_to_the_right_images(browser_page, demo_db):
    from lib import mapview
    from lib.queries import Explorer

    base, page, errors = browser_page
    visit(page, f"{base}/clusters?model=vdc_color")
    box = map_box(page)
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.8, steps=8)
    page.mouse.up()
    page.get_by_text("Selected region:").wait_for(timeout=30000)
    wait_rendered(page)
    region = mapview.parse_bounds(parse_qs(urlparse(page.url).query)["region"][0])
    ex = Explorer(demo_db[0])
    total = mapview.count(ex, "vdc_color", region)
    assert 0 < total < ex.n_images
    assert page.get_by_text(f"Selected region: {total:,} images").count() == 1  # every image, not the drawn ones
    assert loaded_images(page) > 24
    shot(page, "clusters-region")
    # the region as a review set
    with page.context.expect_page() as opened:  # in a new tab, beside the map
        page.get_by_role("link", name=f"Review these {total:,} images in Outliers").click()
    review = opened.value
    review.get_by_text(f"Only the {total:,} images in a region of vdc_color's map").wait_for(timeout=60000)
    wait_rendered(review)
    assert parse_qs(urlparse(review.url).query)["region"] == [region.text()] and "map=vdc_color" in review.url
    review.close()
    # a click on a point opens that image, its cluster, and marks it on every model's map
    visit(page, f"{base}/clusters?model=vdc_color")
    x, y, image_id = point_under_mouse(page, map_box(page))
    page.mouse.click(x, y)
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('image') === '{image_id}'",
                           timeout=30000)
    page.get_by_text(f"Image #{image_id}").wait_for(timeout=30000)
    wait_rendered(page)
    own = ex.assignment("vdc_color", image_id)
    assert parse_qs(urlparse(page.url).query)["cluster"] == [str(own)]
    assert page.get_by_text(f"cluster {own} (shown below)").count() == 1
    shot(page, "clusters-picked")
    for model in ("vdc_type", "osnet"):  # another model's map: the same image, and picker and card agree
        sidebar = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
        sidebar.click()
        page.get_by_role("option", name=model, exact=True).click()
        page.wait_for_function(f"() => location.search.includes('model={model}')", timeout=30000)
        wait_rendered(page)
        assert page.get_by_text(f"Image #{image_id}").count() == 1
        picker_and_card_agree(page, ex, model)
    assert not errors


def test_a_verdict_survives_a_reload(browser_page):
    base, page, errors = browser_page
    url = f"{base}/outliers?model=consensus&page=3&flagged=0"  # all ranked entries: page 3 exists
    visit(page, url)
    first = page.locator('[data-testid="stImage"]').first
    caption = page.locator('[data-testid="stImageCaption"]').first.inner_text()
    assert caption.startswith("#49 ")
    group = page.locator('div[class*="st-key-tile-"] [data-testid="stButtonGroup"]').first
    group.get_by_role("radio", name="unsure").click()
    wait_rendered(page)
    note = page.get_by_placeholder("note").first
    note.fill("two cars in one crop")
    note.press("Enter")
    wait_rendered(page)
    page.reload()
    wait_rendered(page)
    assert page.locator('[data-testid="stImageCaption"]').first.inner_text() == caption
    selected = page.locator('div[class*="st-key-tile-"] [data-testid="stButtonGroup"]').first.locator(
        '[role="radio"][aria-checked="true"]')
    assert selected.inner_text().strip() == "unsure"
    assert page.get_by_placeholder("note").first.input_value() == "two cars in one crop"
    assert "page=3" in page.url
    assert first.count() == 1
    shot(page, "outliers-review")
    assert not errors


def test_password_gate_covers_every_deep_link(browser_page, demo_db, tmp_path):
    # the server's HOME holds ~/.streamlit/secrets.toml, as a host's secrets would
    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text('password = "s3cret"\n')
    db, _ = demo_db
    links = ["similar?model=osnet&image=42", "outliers?model=consensus&page=2", "clusters?model=vdc_color&cluster=1",
             "metrics?model=osnet", ""]
    browser = browser_page[1].context.browser  # one Playwright per process: the module's browser
    with running_app(db, env={"HOME": str(home)}) as base:
        for link in links:  # the first is the fresh server's very first request
            page = browser.new_page()
            page.goto(f"{base}/{link}")
            wait_rendered(page)
            assert page.locator('input[type="password"]').count() == 1, link  # (no ARIA role of its own)
            body = page.inner_text('[data-testid="stMain"]')
            for data_testid in ("stImage", "stMetric", "stDataFrame", "stVegaLiteChart"):
                assert page.locator(f'[data-testid="{data_testid}"]').count() == 0, (link, data_testid)
            assert "query #" not in body and "Ranks" not in body and "Chosen" not in body
            page.close()
        page = browser.new_page()
        page.goto(f"{base}/{links[0]}")
        wait_rendered(page)
        box = page.locator('input[type="password"]')
        box.fill("wrong")
        box.press("Enter")
        page.get_by_text("Wrong password.").wait_for(timeout=30000)
        assert page.locator('[data-testid="stImage"]').count() == 0
        # the right one shows the shared link's own page, with its parameters
        box.fill("s3cret")
        box.press("Enter")
        page.get_by_text("query #42").wait_for(timeout=60000)
        wait_rendered(page)
        assert "image=42" in page.url and "model=osnet" in page.url
        assert loaded_images(page) == 13
        page.close()


def current_tile(page):
    """The image ID of the highlighted tile (its container's key is ``tile-<id>-current``)."""
    cls = page.locator('div[class*="st-key-tile-"][class*="-current"]').first.get_attribute("class")
    return int(next(c for c in cls.split() if c.endswith("-current")).split("-")[3])


def tile_verdict(page, image_id):
    checked = page.locator(f".st-key-tile-{image_id}, .st-key-tile-{image_id}-current").first.locator(
        '[role="radio"][aria-checked="true"]')
    return checked.inner_text().strip() if checked.count() else None


def test_keys_give_and_undo_verdicts_but_not_while_typing(browser_page):
    base, page, errors = browser_page
    visit(page, f"{base}/outliers?model=consensus&page=5&flagged=0")  # pages no other test reviews
    first = current_tile(page)
    assert tile_verdict(page, first) is None
    page.keyboard.press("f")
    page.wait_for_function(f"() => !document.querySelector('.st-key-tile-{first}-current')", timeout=30000)
    wait_rendered(page)
    second = current_tile(page)
    assert second != first and tile_verdict(page, first) == "fine"
    page.keyboard.press("z")  # undo: the verdict goes and the highlight comes back
    page.wait_for_selector(f".st-key-tile-{first}-current", timeout=30000)
    wait_rendered(page)
    assert tile_verdict(page, first) is None
    # typing a note: its letters are text, not verdicts
    page.locator(f".st-key-tile-{first}-current").get_by_placeholder("note").type("fou")
    wait_rendered(page)
    assert current_tile(page) == first and tile_verdict(page, first) is None
    shot(page, "outliers-keys")
    assert not errors


def test_one_verdict_for_a_page(browser_page):
    base, page, errors = browser_page
    visit(page, f"{base}/outliers?model=consensus&page=6&flagged=0")
    page.get_by_text("One verdict for many entries").click()
    bulk = page.locator('[data-testid="stExpander"]')
    bulk.get_by_role("radio", name="unsure").click()
    wait_rendered(page)
    bulk.get_by_role("button", name="Give it").click()
    page.get_by_text("unsure given to 24 of 24 entries").wait_for(timeout=30000)
    wait_rendered(page)
    checked = page.locator('div[class*="st-key-tile-"] [role="radio"][aria-checked="true"]')
    assert checked.count() == 24 and set(checked.all_inner_texts()) == {"unsure"}
    assert not errors


@pytest.mark.parametrize("how", ["file name", "foreign path", "vehicle"])
def test_search_by_what_a_user_holds(browser_page, demo_db, how):
    from lib.queries import Explorer

    base, page, errors = browser_page
    ex = Explorer(demo_db[0])
    image = ex.image(42)
    path, vehicle = ex.paths([42])[42], image["vehicle_id"]
    photos = ex.scalar("SELECT count(*) FROM images WHERE vehicle_id = ?", [vehicle])
    ex.close()
    typed = {"file name": path.rsplit("/", 1)[1].rsplit(".", 1)[0],
             "foreign path": "D:\\exports\\raw_data\\" + path.replace("/", "\\"),
             "vehicle": f"v{vehicle}"}[how]
    visit(page, f"{base}/similar?model=osnet&image=0")
    box = page.get_by_role("textbox", name="Image ID")
    box.fill(typed)
    box.press("Enter")
    if how == "vehicle":
        page.get_by_text(f"vehicle {vehicle}: {photos} photos").wait_for(timeout=30000)
        wait_rendered(page)
        assert loaded_images(page, at_least=photos) == photos
        assert page.locator('[data-testid="stDataFrame"]').count() == 1  # its clusters under every model
    else:
        page.get_by_text("query #42", exact=True).wait_for(timeout=30000)
        wait_rendered(page)
    assert parse_qs(urlparse(page.url).query)["image"] == [typed]  # the link is the search
    assert not errors


def test_every_link_with_all_its_parameters_shows_the_same_in_a_new_browser(browser_page, demo_db):
    """A colleague opening a shared link (a new browser context: no session, no cache) sees what its
    author saw, and no parameter is dropped from the link on the way."""
    from lib.queries import Explorer

    base, author, errors = browser_page
    for link in full_links(Explorer(demo_db[0])):
        visit(author, f"{base}/{link}")
        loaded_images(author)
        shared = author.evaluate("() => location.href")  # what the address bar holds now
        sent, kept = parse_qs(urlparse(link).query), parse_qs(urlparse(shared).query)
        assert {k: kept.get(k) for k in sent} == sent, (link, shared)
        seen = settled(author)
        assert "Ignored" not in seen["text"], (link, seen["text"][:500])  # every value was taken
        colleague = author.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        visit(colleague, shared)
        loaded_images(colleague)
        assert settled(colleague) == seen, link
        assert parse_qs(urlparse(colleague.evaluate("() => location.href")).query) == kept
        colleague.context.close()
    assert not errors


def location_query(page):
    """The address bar's parameters (``page.url`` can lag behind Streamlit's history updates)."""
    return parse_qs(page.evaluate("() => location.search").lstrip("?"))


def test_a_search_that_finds_nothing_is_what_the_link_says(browser_page):
    # issue 17 item 7: the link must follow what is shown; the neighbour count must survive a bad search
    # (the slider, drawn after the search box, lost its value in the run the search stopped and came back as 4)
    base, page, errors = browser_page
    visit(page, f"{base}/similar?model=osnet&image=42&n=8")
    box = page.get_by_role("textbox", name="Image ID")
    for typed, says in (("99999999", "no image 99999999"), ("abc", "nothing matches 'abc'")):
        box.fill(typed)
        box.press("Enter")
        page.get_by_text(says).wait_for(timeout=30000)
        page.wait_for_function(f"() => new URLSearchParams(location.search).get('image') === {typed!r}",
                               timeout=30000)
        wait_rendered(page)
        assert location_query(page)["n"] == ["8"] and page.get_by_text("query #").count() == 0
    page.reload()  # the link shows the same: the warning, no query
    page.get_by_text("nothing matches 'abc'").wait_for(timeout=30000)
    box = page.get_by_role("textbox", name="Image ID")
    box.fill("43")
    box.press("Enter")
    page.get_by_text("query #43", exact=True).wait_for(timeout=30000)
    wait_rendered(page)
    query = location_query(page)
    assert query["image"] == ["43"] and query["n"] == ["8"]
    assert loaded_images(page) == 1 + 8
    assert not errors


@pytest.mark.parametrize("path", ["", "compare?image=42"])
def test_tables_keep_within_the_page_at_1280_px(browser_page, path):
    # issue 17 item 7: the Overview and Compare tables ran past the right edge of the page
    base, first, errors = browser_page
    page = first.context.browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        visit(page, f"{base}/{path}")
        page.wait_for_selector('[data-testid="stDataFrame"] .dvn-scroller', timeout=30000)
        main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
        tables = [t for t in page.locator('[data-testid="stDataFrame"]').all() if t.is_visible()]
        assert tables
        for table in tables:
            box = table.bounding_box()
            assert box["x"] >= main["x"] - 1 and box["x"] + box["width"] <= min(main["x"] + main["width"], 1280) + 1
            wide, shown, overflow = table.locator(".dvn-scroller").first.evaluate(
                "e => [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]")
            if path == "":  # the Overview's columns all fit: nothing hidden to the right
                assert wide <= shown + 2, (wide, shown)
            else:  # Compare holds every score: it scrolls sideways inside the page, and says so
                assert overflow in ("auto", "scroll")
        if path:
            assert wide > shown  # the models table is the last one checked only if it scrolls
            assert page.get_by_text("scroll the table sideways").count() == 1
        shot(page, f"tables-1280-{path.split('?')[0] or 'overview'}")
    finally:
        page.close()


def test_outlier_tiles_in_a_row_line_up(browser_page):
    # issue 17 item 7 / issue 18 item 2: reasons of different lengths made the grid ragged
    base, page, errors = browser_page
    visit(page, f"{base}/outliers?model=consensus&page=4&flagged=0")
    assert loaded_images(page) >= 24
    tops = page.evaluate("""() => Array.from(document.querySelectorAll('div[class*="st-key-tile-"]')).map(t => {
        const v = t.querySelector('[data-testid="stButtonGroup"]').getBoundingClientRect();
        const r = t.getBoundingClientRect();
        return [Math.round(r.left), v.top];
    })""")
    assert len(tops) == 24
    rows = [tops[n:n + 4] for n in range(0, 24, 4)]  # tiles are listed row by row
    for row in rows:
        assert len({left for left, _ in row}) == 4  # four columns
        assert max(t for _, t in row) - min(t for _, t in row) <= 1, row
    whys = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    assert any(w.strip().startswith("why:") and "…" in w for w in whys)  # a few words; the rest on hover
    assert not errors
