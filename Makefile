# dsx — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BVENV  := .venv-bench
BSTAMP := $(BVENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

$(BSTAMP): pyproject.toml
	$(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/python -m pip install -q --upgrade pip
	$(BVENV)/bin/python -m pip install -q -e '.[bench]'
	touch $(BSTAMP)

bench: $(BSTAMP)
	$(BVENV)/bin/python bench/run.py
	$(BVENV)/bin/python bench/frontend.py

clean:
	rm -rf $(VENV) $(BVENV) build dist .pytest_cache .mypy_cache .ruff_cache
