"""Issue 12: 1,048,576 tokens on a TP=4 group of one 4xH200 host, in stages of under 10 minutes.

Same shape as benchmarks.gpu.validate (one module per stage, this file the
dispatcher): each stage starts what it needs, measures, and rewrites
``RESULTS/tp4_<stage>.json`` after every measurement, so a stage cut off by
the machine's limit keeps what it has.

    python -m benchmarks.gpu.tp4_1m ours --results OUT     # (device.sh tp4 ours)

Stages:
  checkpoints   the random real-size checkpoints (full and 4-layer)
  ours          profile h200x4-1m through the real stack (HTTP -> ingress ->
                router -> il25-long, a TP=4 engine): streaming TTFT of token-id
                prompts of 524,288 and 1,048,000 tokens (max_tokens 1); decode
                ms/token at 1M from one streamed 64-token follow-up on the same prompt
                (its prefill is a prefix-cache hit); the KV capacity vLLM
                reports for the long pool vs the planner's prediction
  stock         stock vLLM (VLLM_PLUGINS=none), the long pool's engine
                arguments at TP=4, TTFT of the same prompts
  correctness   next-token logprobs through the router at 8,192 (noise floor,
                short pool) and 1,048,000 tokens on the 4-layer real-width
                checkpoint at TP=4 vs benchmarks/gpu/logprob_reference.py on one GPU,
                at the pool's base and a wrong one (benchmarks.gpu.validate's stage)
  summary       RESULTS/tp4_*.json -> --out (benchmarks/results/gpu/tp4_1m.json)

CPU dry run (small sizes, the cpu-demo profile, whose il25-long is TP=2):
    VALIDATE_SKIP_CHECKPOINTS=1 python -m benchmarks.gpu.tp4_1m ours --results /tmp/tp4 \\
        --profile cpu-demo --sizes 6000 10000 --decode-tokens 8
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.gpu.checkpoints import stage_checkpoints
from benchmarks.gpu.stage_cli import run_stage, stage_parser
from benchmarks.gpu.tp4_1m.correctness import stage_correctness
from benchmarks.gpu.tp4_1m.ours import stage_ours
from benchmarks.gpu.tp4_1m.profile import PROFILE, SIZES, SUMMARY
from benchmarks.gpu.tp4_1m.stock import stage_stock
from benchmarks.gpu.tp4_1m.summary import stage_summary

STAGES = {
    "checkpoints": stage_checkpoints,
    "ours": stage_ours,
    "stock": stage_stock,
    "correctness": stage_correctness,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("benchmarks.gpu.tp4_1m", __doc__, STAGES)
    parser.add_argument("--profile", default=str(PROFILE), help="profile name or path (dry runs: cpu-demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="prompt tokens (ours, stock)")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--correctness-sizes", type=int, nargs="+", default=[8192, 1_048_000])
    parser.add_argument("--out", type=Path, default=SUMMARY, help="summary file (stage summary)")
    args = parser.parse_args(argv)
    if args.stage != "summary":
        from cluster.config import profile_path

        args.profile = profile_path(str(args.profile))
    return run_stage(STAGES, args, "benchmarks.gpu.tp4_1m", argv, log_prefix="tp4_")


if __name__ == "__main__":
    sys.exit(main())
