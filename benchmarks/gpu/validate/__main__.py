"""GPU validation of the whole stack on one H200, in stages of under 10 minutes: the stage dispatcher.

Each stage (one module of this package) starts what it needs (the real
cluster through ``cluster.cli.start_cluster``, or stock vLLM), measures
through the HTTP API, and writes ``RESULTS/<stage>.json`` after every
measurement, so a stage cut off by the machine's time limit keeps what it
measured. ``summary`` (any machine) folds the stage files into
``summary.json`` and a PNG.

    python -m benchmarks.gpu.validate serve --results benchmarks/results/gpu
    python -m benchmarks.gpu.validate serve --model internlm3-8b-instruct --results ...

``--model`` picks the model of the checkpoints, serve, stock and correctness
stages (benchmarks/gpu/validated_models.py: InternLM2.5 by default, whose
stage files keep their names; InternLM3's are prefixed ``internlm3-``).

Stages:
  checkpoints   write the random real-size checkpoints (full and 4-layer)
  serve         profile h200-1gpu[-internlm3] (short + long pool sharing the GPU):
                (a) routing and limits, (c) cold prefill tokens/s at 32k, 128k
                and the long pool's maximum, ingress time, (c2) overhead of our
                path over the engine on 1k-token requests; replica restarts
  overhead      (c2) alone, h200-1gpu's short pool with Serve's direct ingress: our API
                through Serve's proxy, through the ingress replica's own port,
                and the engine, interleaved
  stock         stock vLLM (no plugin) on the same GPU, same engine arguments,
                same prompt sizes: the baseline of (c)
  correctness   (b) next-token logprobs through the router at 8k, 300k, 500k
                tokens vs a plain-PyTorch GPU reference of the same 4-layer
                checkpoint, at the pool's base and at a wrong one
  doc_qa        (d) 128k-token documents, two replicas, per router
  kv_tier       issue 11: questions on GPU-evicted 128k documents, host-RAM
                KV tier off vs on
  warm_path     issue 27: warm follow-up TTFT at 128k and 400k tokens, our API
                against `vllm serve` (same checkpoint and engine arguments),
                and short_overhead_http while both are up; --warm-lengths
                picks the lengths of one command (warm_path-<lengths>.json)
  short_overhead_http  issue 27: 1k-token requests, our API (proxy, direct
                ingress) against `vllm serve`, interleaved, alone
  summary       summary.json + doc_qa.png from the stage files

The stack must already be importable (PYTHONPATH=repo:site from the wheel
bundle; nothing is installed from the network).
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.gpu.checkpoints import stage_checkpoints
from benchmarks.gpu.stage_cli import run_stage, stage_parser
from benchmarks.gpu.validate.correctness import stage_correctness
from benchmarks.gpu.validate.doc_qa import stage_doc_qa
from benchmarks.gpu.validate.kv_tier import stage_kv_tier
from benchmarks.gpu.validate.overhead import stage_overhead
from benchmarks.gpu.validate.serve import stage_serve
from benchmarks.gpu.validate.stock import stage_stock
from benchmarks.gpu.validate.summary import stage_summary
from benchmarks.gpu.validate.warm_path import stage_short_overhead_http, stage_warm_path
from benchmarks.gpu.validated_models import DEFAULT_MODEL, VALIDATED_MODELS

PROFILES = Path(__file__).resolve().parents[3] / "benchmarks" / "profiles"

STAGES = {
    "checkpoints": stage_checkpoints,
    "serve": stage_serve,
    "overhead": stage_overhead,
    "stock": stage_stock,
    "correctness": stage_correctness,
    "doc_qa": stage_doc_qa,
    "kv_tier": stage_kv_tier,
    "warm_path": stage_warm_path,
    "short_overhead_http": stage_short_overhead_http,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("benchmarks.gpu.validate", __doc__, STAGES)
    parser.add_argument("--prefill-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--model", choices=list(VALIDATED_MODELS), default=DEFAULT_MODEL,
                        help="the model of the checkpoints, serve, stock and correctness stages")
    parser.add_argument("--overhead-repeats", type=int, default=30, help="c2 rounds (serve: 0 skips c2)")
    parser.add_argument("--correctness-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--with-rope-plugin", action="store_true", help="stock: keep our RoPE plugin (diagnosis)")
    parser.add_argument("--stock-hf-overrides", default=None, help="stock: hf_overrides as JSON (diagnosis)")
    parser.add_argument("--routers", default="affinity,power_of_two,prefix_cache")
    parser.add_argument("--documents", type=int, default=4)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--document-tokens", type=int, default=128_000)
    # Other profiles with the same pool names (default: the model's): CPU dry runs of this script.
    parser.add_argument("--serve-profile", type=Path, default=None)
    parser.add_argument("--overhead-profile", type=Path, default=PROFILES / "overhead-h200.yaml")
    parser.add_argument("--correctness-profile", type=Path, default=None)
    parser.add_argument("--doc-qa-profile", type=Path, default=PROFILES / "doc-qa-h200.yaml")
    parser.add_argument("--kv-tier-profile", type=Path, default=PROFILES / "kv-tier-h200.yaml")
    parser.add_argument("--kv-tier-documents", type=int, default=4, help="working set, in documents")
    parser.add_argument("--kv-tier-rounds", type=int, default=1, help="evicted + GPU-resident rounds")
    parser.add_argument("--kv-tier-order", type=lambda s: s.split(","), default=["off", "on"])
    parser.add_argument("--warm-lengths", type=int, nargs="*", default=[128_000],
                        help="warm_path: document lengths in tokens (those fitting --warm-shared-profile run with "
                        "both servers up, the others one server at a time: 400000 takes a command of its own)")
    parser.add_argument("--warm-questions", type=int, default=10, help="warm_path: follow-ups per document and arm")
    parser.add_argument("--warm-arms", default="vllm_serve,ours",
                        help="warm_path: the servers of this command (one of them: a run split in two)")
    parser.add_argument("--warm-profile", type=Path, default=PROFILES / "warm-path-h100.yaml",
                        help="warm_path: one server at a time (long documents)")
    parser.add_argument("--warm-shared-profile", type=Path, default=PROFILES / "warm-path-shared-h100.yaml",
                        help="warm_path, short_overhead_http: both servers up at once")
    parser.add_argument("--http-overhead-repeats", type=int, default=40,
                        help="short_overhead_http rounds (warm_path: while both servers are up; 0 skips)")
    parser.add_argument("--request-gap-s", type=float, default=0.25,
                        help="warm_path, short_overhead_http: idle time before each timed request (the previous "
                        "server's threads settle; on 2 CPU cores a request right after vllm serve's took ~0.9 s more)")
    parser.add_argument("--vllm-serve-with-rope-plugin", action="store_true",
                        help="warm_path: vllm serve with our RoPE plugin (default: stock, VLLM_PLUGINS=none)")
    args = parser.parse_args(argv)
    return run_stage(STAGES, args, "benchmarks.gpu.validate", argv, VALIDATED_MODELS[args.model].results_prefix)


if __name__ == "__main__":
    sys.exit(main())
