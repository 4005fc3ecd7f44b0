#!/usr/bin/env bash
# The GPU test machine's side of a validation run (benchmarks/README.md, "Measured on a GPU").
#
#   benchmarks/gpu/device.sh receive PART   copy one carried bundle part to /root/b
#   benchmarks/gpu/device.sh STAGE [ARGS]   unpack the bundle once, run a stage (python -m benchmarks.gpu.validate)
#   benchmarks/gpu/device.sh tp4 STAGE [ARGS]   the same for benchmarks.gpu.tp4_1m (issue 12, 4xH200)
#   RUN_NAME=NAME benchmarks/gpu/device.sh ...  name the log NAME.log (e.g. another model's run)
#   GPU_SAMPLE_MS=200 benchmarks/gpu/device.sh ...  also sample SM clock, power and temperature
#                                               into NAME.gpu.csv (clock and power explain speed
#                                               differences that the kernels do not)
#
# The machine has no network: the stack arrives as a wheel bundle
# (tools/pins.py bundle) in parts small enough for one transfer each, and
# lives outside the checkout (/root), which survives between back-to-back
# commands. Results go to $OUT/gpu, which comes back to the caller.
set -euo pipefail
BUNDLE=/root/b
SITE=/root/site
case "${1:?stage or receive}" in
  receive)
    mkdir -p "$BUNDLE"
    cp "${2:?part path}" "$BUNDLE/"
    ls -la "$BUNDLE"
    ;;
  *)
    if [ ! -f "$SITE/.unpacked" ]; then
      mkdir -p "$SITE"
      cat "$BUNDLE"/part.* | tar -xz -C "$SITE"
      touch "$SITE/.unpacked"
    fi
    # NVLink multicast off: it can take a shared host's GPUs out of service.
    export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 NCCL_NVLS_ENABLE=0
    export PATH="$SITE/bin:$PATH"
    module=benchmarks.gpu.validate results="$OUT/gpu" prefix=
    if [ "$1" = tp4 ]; then
      module=benchmarks.gpu.tp4_1m results="$OUT/gpu-tp4" prefix=tp4_
      shift
    fi
    mkdir -p "$results"
    stage=${1:?stage}
    shift
    # The stage stops itself before the machine's 10-minute cut (STAGE_LIMIT_S)
    # so that its log still comes back, gzipped: a full engine log is too
    # large to return as it is.
    log="$results/${RUN_NAME:-$prefix$stage}.log"
    sampler=
    if [ -n "${GPU_SAMPLE_MS:-}" ]; then
      nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,utilization.gpu \
        --format=csv -lms "$GPU_SAMPLE_MS" > "${log%.log}.gpu.csv" &
      sampler=$!
    fi
    timeout --signal=INT --kill-after=20 "${STAGE_LIMIT_S:-560}" \
      python3 -m "$module" "$stage" --results "$results" "$@" 2>&1 | tee "$log" \
      | grep --line-buffered -v "^WARNING\|INFO 1\|DEBUG" || true
    gzip -f "$log"
    if [ -n "$sampler" ]; then kill "$sampler" || true; fi
    ;;
esac
