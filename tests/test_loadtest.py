"""`make loadtest` in miniature (3 users, 15 s on the test database), so the script cannot rot."""
import os

import pytest

from .browser import CHROMIUM

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found", allow_module_level=True)
pytest.importorskip("playwright.async_api")


def test_concurrent_sessions_click_through_every_page_without_errors(demo_db):
    from bench import loadtest

    res = loadtest.run(demo_db[0], users=3, seconds=15, timeout_s=120)
    assert res["errors"] == 0, res["error_samples"]
    assert res["served"] >= 6  # at least two actions per session
    assert res["p50_s"] > 0 and res["p95_s"] >= res["p50_s"]
    assert res["app_rss_mb"] > 50
    table = loadtest.markdown(res)
    assert "| **all** |" in table and "similar-images search" in table
