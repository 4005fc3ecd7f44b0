#!/usr/bin/env bash
# The GPU test machine's side of a validation run (see benchmarks/gpu/README.md).
#
#   benchmarks/gpu/device.sh receive PART   copy one carried bundle part to /root/b
#   benchmarks/gpu/device.sh STAGE [ARGS]   unpack the bundle once, run a stage of validate.py
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
    export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
    export PATH="$SITE/bin:$PATH"
    mkdir -p "$OUT/gpu"
    stage=$1
    shift
    python3 benchmarks/gpu/validate.py "$stage" --results "$OUT/gpu" "$@" 2>&1 | tee "$OUT/gpu/$stage.log" \
      | grep --line-buffered -v "^WARNING\|INFO 1\|DEBUG" || true
    ;;
esac
