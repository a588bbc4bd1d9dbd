"""A missing browser skips the browser tests on a developer's machine and fails them under CI=true."""
import os
import subprocess
import sys

import pytest

from .browser import CHROMIUM, ROOT

MODULE = '''
import pytest
from tests.browser import fail_without_browser, require_browser

MISSING = require_browser("{module}")


@pytest.fixture(scope="module", autouse=True)
def browser_installed():
    fail_without_browser(MISSING)


def test_drives_the_browser():
    pass
'''


@pytest.mark.parametrize("ci, module, outcome, says", [
    ("true", "no_such_playwright_module", "1 error", "no_such_playwright_module cannot be imported"),
    ("", "no_such_playwright_module", "1 skipped", "no_such_playwright_module cannot be imported"),
    # Playwright there: the tests run where chromium is (and fail under CI where it is not)
    ("true", "json", "1 passed" if os.path.exists(CHROMIUM) else "1 error", ""),
])
def test_a_missing_browser_fails_only_under_ci(tmp_path, ci, module, outcome, says):
    (tmp_path / "test_guarded.py").write_text(MODULE.format(module=module))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, CI=ci, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "test_guarded.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in r.stdout.splitlines()[-1], r.stdout[-3000:]
    assert says in r.stdout
    assert (r.returncode == 1) == (outcome == "1 error")  # (a module skipped whole exits 5: nothing ran)
