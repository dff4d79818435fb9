# dsx — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BVENV  := .venv-bench
BSTAMP := $(BVENV)/.installed
EXT    := vscode-extension
NSTAMP := $(EXT)/node_modules/.installed

.PHONY: demo test test-extension lint typecheck bench clean

# The optional local model (llama-cpp-python + SmolLM2-135M) is tried once per venv; when it
# cannot be installed, one line says why and its tests skip (DSX_NO_LOCAL_MODEL=1 skips it).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'torch==2.13.0+cpu'  # CPU-only: the default wheel pulls CUDA (GBs)
	$(PY) -m pip install -q -e '.[all,dev,retrieval,finetune,chroma]'
	bash tools/install-local-model.sh $(PY)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The suite runs with a Docker engine for the sandbox's Docker tests where one can be
# started (tools/with-docker.sh; DSX_NO_DOCKER=1 skips that); they say why they skip otherwise.
test: $(STAMP) $(NSTAMP)
	bash tools/with-docker.sh $(PY) -m pytest -q
	$(MAKE) test-extension

# The VS Code extension: exact dependencies from package-lock.json (reinstalled when it changes).
$(NSTAMP): $(EXT)/package.json $(EXT)/package-lock.json
	cd $(EXT) && npm ci --no-audit --no-fund
	touch $(NSTAMP)

# Type-check, bundle (esbuild), package the .vsix (vsce), then the TextMate grammar tests and
# a Node client speaking LSP to the server (see tests/lsp/grammar, tests/lsp/node).
test-extension: $(STAMP) $(NSTAMP)
	cd $(EXT) && npm run typecheck && npm run build && npm run package
	cd $(EXT) && DSX_PYTHON="$(abspath $(PY))" npm test

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

$(BSTAMP): pyproject.toml
	$(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/python -m pip install -q --upgrade pip
	$(BVENV)/bin/python -m pip install -q 'torch==2.13.0+cpu'
	$(BVENV)/bin/python -m pip install -q -e '.[all,bench,retrieval,chroma]'
	touch $(BSTAMP)

bench: $(BSTAMP)
	$(BVENV)/bin/python bench/run.py
	$(BVENV)/bin/python bench/frontend.py
	$(BVENV)/bin/python bench/throughput.py
	$(BVENV)/bin/python bench/evaluate.py
	$(BVENV)/bin/python bench/sandbox.py
	$(BVENV)/bin/python bench/lsp.py
	$(BVENV)/bin/python bench/retrieval.py

clean:
	rm -rf $(VENV) $(BVENV) build dist .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(EXT)/node_modules $(EXT)/dist $(EXT)/*.vsix
