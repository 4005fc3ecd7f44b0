"""The random real-size checkpoints the GPU stages serve: full depth, and 4 layers for the plain-PyTorch reference."""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.common.progress import progress
from benchmarks.gpu.validated_models import DEFAULT_MODEL, VALIDATED_MODELS

FULL_CHECKPOINT = "internlm2_5-7b-chat-1m-random"
REDUCED_LAYERS = 4


def ensure_checkpoints(models: Path, *, model: str = DEFAULT_MODEL, reduced: bool = True, full: bool = True) -> dict:
    """Build the model's 4-layer and/or full checkpoints under ``models`` (kept if present); seconds per checkpoint."""
    from cluster.real_size import build_real_size

    out = {}
    if os.environ.get("VALIDATE_SKIP_CHECKPOINTS"):  # CPU dry runs of this script
        return out
    for layers, wanted in ((REDUCED_LAYERS, reduced), (None, full)):
        if not wanted:
            continue
        started = time.perf_counter()
        path = build_real_size(model, models, layers=layers)
        out[path.name] = round(time.perf_counter() - started, 1)
        progress(f"checkpoint {path} ready in {out[path.name]} s")
    return out


def use_full_checkpoint(models: Path, model: str = DEFAULT_MODEL) -> dict:
    """Build the model's full-depth checkpoint and point its profiles at it."""
    from cluster.real_size import spec_for

    os.environ[VALIDATED_MODELS[model].checkpoint_env] = str(models / spec_for(model).name)
    return ensure_checkpoints(models, model=model, reduced=False)


def stage_checkpoints(args, log) -> None:
    """Stage ``checkpoints``: write the model's random real-size checkpoints (full and 4-layer)."""
    log.put("checkpoints_s", ensure_checkpoints(args.models, model=getattr(args, "model", DEFAULT_MODEL)))
