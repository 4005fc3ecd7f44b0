# The project's image: the official Ray LLM image (Ray Serve LLM, the CUDA
# build of vLLM, torch, CUDA libraries) plus this repository, pip-installed so
# that `deployments.app:build_app` imports and vLLM's engine subprocesses find
# the `internlm_rope` plugin through its entry point.
#
#   make image       (docker build -t "$(python3 tools/image.py ref)" .)
#
# Needs BuildKit (the default builder since Docker 23) for RUN --mount. No
# `# syntax=` line: the built-in frontend suffices, and air-gapped builders
# need not pull docker/dockerfile.
#
# The base's Ray must be the pinned Ray (`ray==` in constraints-gpu.txt) and
# its Python one that pyproject.toml supports: tests/image checks this
# tag, and `tools/image.py pins` checks the image itself during the build.
# Override it only to pull the same image from a mirror.
ARG BASE_IMAGE=rayproject/ray-llm:2.60.0-py312-cu130

# The project as a wheel, built apart so no source tree or build files are
# left in the image. setuptools writes into the source directory, which COPY
# leaves owned by root; this stage is thrown away, so it may run as root.
FROM ${BASE_IMAGE} AS build
# hadolint ignore=DL3002
USER 0
COPY pyproject.toml README.md /tmp/build/src/
COPY cluster /tmp/build/src/cluster
COPY deployments /tmp/build/src/deployments
COPY requirements-gpu.txt requirements-serve.txt constraints-gpu.txt tools/image.py /tmp/build/
RUN python -m pip wheel --no-cache-dir --no-deps --root-user-action=ignore \
      --wheel-dir /tmp/build/wheels /tmp/build/src

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="longctx-cluster" \
      org.opencontainers.image.description="Long-context InternLM serving on Ray Serve LLM and vLLM" \
      org.opencontainers.image.licenses="Apache-2.0"

# The base image lets its user run anything as root without a password
# (ray-project's base-deps Dockerfile: `ray ALL=NOPASSWD: ALL` in /etc/sudoers,
# and ray in the sudo group). Serving code never needs root: take both away,
# and fail the build if any passwordless rule is left. The chart's
# allowPrivilegeEscalation: false also blocks setuid binaries; this holds for
# pods without it.
USER 0
RUN sed -i '/^ray[[:space:]].*NOPASSWD/d' /etc/sudoers \
    && case " $(id -nG ray) " in *" sudo "*) gpasswd --delete ray sudo ;; esac \
    && ! grep -rqsE '^[^#]*NOPASSWD' /etc/sudoers /etc/sudoers.d \
    && case " $(id -nG ray) " in *" sudo "*) exit 1 ;; esac

# The base image's user (ray, uid 1000, group users), numeric so that a pod's
# `runAsNonRoot: true` can be checked. It owns /home/ray/anaconda3.
USER 1000:100

# Install without re-resolving what the base image has. `image.py pins`
# snapshots the base's installed distributions and writes pip constraints that
# pin every one of them at its installed version, plus constraints-gpu.txt's
# pins for the packages the base lacks. pip can then only add packages: it
# keeps Ray, vLLM, torch and the CUDA libraries bit for bit, and a requirement
# the base cannot satisfy fails the build instead of replacing a base package.
# `image.py verify` proves it afterwards (no base distribution changed or
# vanished), checks the vLLM plugin entry point, and imports the Serve app.
# Plain `pip install -c constraints-gpu.txt` would instead move any base package
# whose version differs from our own resolve; `--no-deps` would skip the few
# libraries the base lacks (e.g. redis).
RUN --mount=type=bind,from=build,source=/tmp/build,target=/tmp/build \
    python /tmp/build/image.py pins /tmp/build/constraints-gpu.txt /tmp/base-snapshot.txt \
      > /tmp/base-pins.txt \
    && python -m pip install --no-cache-dir -c /tmp/base-pins.txt \
      -r /tmp/build/requirements-gpu.txt /tmp/build/wheels/longctx_cluster-*.whl \
    && python /tmp/build/image.py verify /tmp/base-snapshot.txt \
    && rm /tmp/base-pins.txt /tmp/base-snapshot.txt

# Logs reach `kubectl logs` as they are written. The rest of the runtime
# environment is the base image's own (PATH to /home/ray/anaconda3, HOME, its
# vLLM settings) or is deployment-specific and set by the chart
# (LONGCTX_API_KEYS, HF_TOKEN) or by the profile (engine_env). Do not set
# VLLM_PLUGINS here: vLLM loads every installed plugin only while it is unset.
ENV PYTHONUNBUFFERED=1

WORKDIR /home/ray
# KubeRay runs `ray start` with its own liveness and readiness probes.
HEALTHCHECK NONE
