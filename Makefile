# Quick start: `make run` (app on the demo database) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DB ?= data/vehicles.duckdb
DEMO ?= data/demo
DEMO_VEHICLES ?= 600
PORT ?= 8501

.PHONY: run test screenshots venv browser demo-db bench scaling dask-scaling loadtest reliability clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# first start: the demo's first look (KMeans on each model, about a minute), then the full load in the
# background (the pages say what is still computing); nothing to do when the database is there
demo-db: venv
	@$(PY) -m lib first-start $(DEMO) --db $(DB) --vehicles $(DEMO_VEHICLES)

run: demo-db
	VEHICLE_DB=$(DB) $(PY) -m streamlit run streamlit_app.py --server.port $(PORT)

# Debian's chromium for the browser tests (never a downloaded browser build); under CI=true a chromium
# that cannot be installed stops here, outside CI the browser tests skip
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		&& [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$CI" = true ]; then \
		echo "error: no /usr/bin/chromium and it could not be installed (apt-get install -y chromium, as root)" >&2; exit 1; \
	else echo "no /usr/bin/chromium: run 'sudo apt-get install -y chromium' to enable the browser tests"; fi

# screenshots go to .test-output/screenshots/ (ignored), so a clone stays clean after its own tests
test: venv browser
	$(PY) -m pytest

# refresh the README's pictures, docs/screenshots/*.png, with the browser tests (CI=true: no silent skip)
screenshots: venv browser
	SCREENSHOT_DIR=docs/screenshots CI=true $(PY) -m pytest tests/test_browser.py

bench: venv browser
	$(PY) -m bench

scaling: venv
	$(PY) -m bench.scaling

# the loader on Dask with 1 and 2 local workers against the single process, at 100k and 414k images
# (about 2 hours on 2 cores); figures -> docs/SCALING.md, docs/dask_scaling.json
dask-scaling: venv
	$(PY) -m bench.dask_scaling

# 20 browser sessions for 2 minutes on the full-scale database (.bench/db-40671, built by
# `make bench` or here if missing: ~10 min of data generation + ~25 min of loading on 2 cores);
# LOADTEST_DB=path to use another database. Figures -> docs/RELIABILITY.md
LOADTEST_DB ?=
loadtest: venv browser
	$(PY) -m bench.loadtest $(if $(LOADTEST_DB),--db $(LOADTEST_DB)) --users 20 --seconds 120 \
		--out docs/loadtest.json --doc docs/RELIABILITY.md

# SIGKILL the loader at every stage on a small demo; table -> docs/RELIABILITY.md
reliability: venv
	$(PY) -m bench.reliability

clean:
	rm -rf .pytest_cache .test-output
