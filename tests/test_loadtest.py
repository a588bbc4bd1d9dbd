"""`make loadtest` in miniature (3 users, 15 s on the test database), so the script cannot rot."""
import pytest

from .browser import fail_without_browser, require_browser

pytestmark = pytest.mark.browser
MISSING = require_browser("playwright.async_api")  # skips outside CI; under CI=true the test fails with it


@pytest.fixture(scope="module", autouse=True)
def browser_installed():
    fail_without_browser(MISSING)


def test_concurrent_sessions_click_through_every_page_without_errors(demo_db):
    from bench import loadtest

    res = loadtest.run(demo_db[0], users=3, seconds=15, timeout_s=120)
    assert res["errors"] == 0, res["error_samples"]
    assert res["served"] >= 6  # at least two actions per session
    assert res["p50_s"] > 0 and res["p95_s"] >= res["p50_s"]
    assert res["app_rss_mb"] > 50
    table = loadtest.markdown(res)
    assert "| **all** |" in table and "similar-images search" in table
