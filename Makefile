# bioauth: the two README commands are `make run` and `make test`; everything they need is set
# up from here (virtualenv, pinned packages, system packages, the ONNX model).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
EDITABLE := --config-settings editable_mode=compat
PYTEST_ARGS ?=

.PHONY: setup system-deps model run test lint format protos bench-model bench-accuracy bench-gallery bench-rewrap clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml protos/python/pyproject.toml clients/python/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -c constraints.txt $(EDITABLE) -e protos/python -e clients/python -e '.[dev]'
	touch $(STAMP)

# SoftHSM2 comes from Debian; the tests make their own token with it.
system-deps:
	@if ! command -v softhsm2-util >/dev/null 2>&1; then \
		echo "installing softhsm2 (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq softhsm2; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq softhsm2; fi; \
	fi

# Converts dlib's weights to ONNX into the cache and checks the committed manifest's hash.
model: $(STAMP)
	$(VENV)/bin/bioauth model build

run: $(STAMP) model
	$(VENV)/bin/bioauth serve

test: setup model
	$(VENV)/bin/pytest -m "not bench" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server protos/python/bioauth/wire clients/python scripts tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

bench-model: setup model
	$(PY) scripts/bench_model.py

bench-accuracy: setup model
	$(VENV)/bin/bioauth eval lfw

bench-gallery: $(STAMP)
	$(PY) scripts/bench_gallery.py

bench-rewrap: setup
	$(PY) scripts/bench_rewrap.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
