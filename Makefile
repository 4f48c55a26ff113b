# Two set-up commands work on a fresh machine with only Python 3.11+:
#   make demo   - the main job: a lean venv with vfs_orm alone, then the demo on SQLite
#   make test   - a venv with the dev extra at the known-good versions of requirements/dev.lock,
#                 then the test suite
# Refresh the known-good versions with `make lock` (then run `make test` and commit the lock);
# `make test-latest` runs the suite against the newest releases of everything, on purpose.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
LOCK    = requirements/dev.lock
DEMO_VENV   ?= .venv-demo
LATEST_VENV ?= .venv-latest

.PHONY: demo test test-latest pjdfstest lock lint docs bench bench-smoke clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $@

# The demo needs the runtime only (no extra): a venv of its own, a fraction of the dev one.
$(DEMO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q .
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python -m vfs_orm demo

# Two workers a machine's cores (pytest-xdist), a test file per worker at a time (files share
# module fixtures and downloaded suites): the suite is half waiting on subprocesses, servers and
# disks, so on these 2-core machines it takes about half the time it takes on one.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --dist loadfile -m "not pjdfstest"

# pjdfstest (vendored in third_party/) built and run over a vfs-orm mount beside tmpfs, as root:
# a regression gate against tests/pjdfstest_baseline.json (about two minutes).
pjdfstest: $(VENV)/.installed
	$(PY) -m pytest -q -s -m pjdfstest tests/test_pjdfstest.py

# The same suite on the newest release of every dependency (no lock): run it before `make lock`
# to find the next upstream change on purpose rather than in a failed landing.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade -e '.[dev]'
	$(LATEST_VENV)/bin/python -m pytest -q -n auto --dist loadfile -m "not pjdfstest"

# Re-resolve requirements/dev.lock to today's newest releases (uv's resolver; the lock is a
# plain pip constraints file, so installing from it needs pip alone).
lock: $(VENV)/.installed
	$(PY) -m pip install -q uv
	$(PY) -m uv pip compile --universal --python-version 3.11 --extra dev --upgrade \
		-o $(LOCK) pyproject.toml requirements/tools.in

# Also part of `make test` (tests/test_lint.py); here on its own for a quick look.
lint: $(VENV)/.installed
	$(PY) -m ruff check vfs_orm tests benchmarks migrations
	$(PY) -m mypy vfs_orm
	$(VENV)/bin/lint-imports

# The documentation site (docs/, mkdocs.yml) into site/, with warnings as errors: a broken link,
# a missing page or an unparsable docstring fails. tests/test_docs.py builds it too.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

bench-smoke: $(VENV)/.installed
	$(PY) benchmarks/run.py --smoke

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(LATEST_VENV) site build dist *.egg-info .pytest_cache .benchmarks
