"""Stage ``correctness``: next-token logprobs at 8,192 and 1,048,000 tokens at TP=4 against the GPU reference.

The one-GPU validation's correctness stage on this run's profile, served
from the 4-layer checkpoint of the same width (the reference fits one GPU).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.gpu.checkpoints import FULL_CHECKPOINT, REDUCED_LAYERS
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.validate.correctness import stage_correctness as one_gpu_correctness
from benchmarks.gpu.validated_models import DEFAULT_MODEL as MODEL


def stage_correctness(args, log: StageLog) -> None:
    # The same profile on the 4-layer checkpoint of the same width (the reference fits one GPU).
    os.environ["INTERNLM25_1M_PATH"] = str(args.models / f"{FULL_CHECKPOINT}-{REDUCED_LAYERS}l")
    log.put("profile", str(args.profile))
    one_gpu_correctness(argparse.Namespace(
        models=args.models, model=MODEL, correctness_sizes=args.correctness_sizes,
        correctness_profile=Path(args.profile)), log)
