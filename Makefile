# Two set-up commands work on a fresh machine with only Python 3.11+:
#   make demo   - the main job: builds a venv, installs vfs_orm, runs the demo on SQLite
#   make test   - builds the same venv with the dev extra and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: demo test lint bench bench-smoke clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m vfs_orm demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Also part of `make test` (tests/test_lint.py); here on its own for a quick look.
lint: $(VENV)/.installed
	$(PY) -m ruff check vfs_orm tests benchmarks migrations
	$(PY) -m mypy vfs_orm
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

bench-smoke: $(VENV)/.installed
	$(PY) benchmarks/run.py --smoke

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .benchmarks
