"""The ``plan`` subcommand of ``python -m cluster``."""

from __future__ import annotations

import json

from cluster.planner.base import PlanError
from cluster.planner.memory import plan_cluster
from cluster.planner.report import failures, format_report
from cluster.planner.shapes import worker_shapes


def cmd_plan(args, load) -> int:
    cluster = load(args.profile, args.set)
    try:
        plans = plan_cluster(cluster, device_memory_gib=args.gpu_memory_gib)
    except PlanError as exc:
        raise SystemExit(f"profile {args.profile}: {exc}") from None
    if args.format == "json":
        print(json.dumps([p.model_dump(mode="json") for p in plans], indent=2))
    else:
        print(format_report(plans, markdown=args.format == "markdown"))
        print("\nKubernetes worker groups (helm/): one pod per replica")
        for shape in worker_shapes(cluster):
            print(f"  {shape.devices_per_pod} x {shape.accelerator or cluster.device} per pod, "
                  f"{shape.min_replicas}-{shape.max_replicas} pods: {', '.join(shape.pools)}")
    bad = failures(plans, strict=args.strict)
    if bad:
        # stderr and a non-zero exit so CI and `helm` wrappers stop on it.
        raise SystemExit(f"profile {args.profile} does not fit:\n  " + "\n  ".join(bad))
    return 0


def add_plan_parser(subparsers, load) -> None:
    """The ``plan`` subcommand; ``load(profile, overrides)`` is the CLI's profile loader."""
    p = subparsers.add_parser("plan", help="capacity plan: weights, KV per token, tokens that fit")
    p.add_argument("profile", nargs="?", default="cpu-demo", help="profile name or YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. pools.il25-long.engine.tensor_parallel_size=2")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="GPU memory for accelerators the planner does not know")
    p.add_argument("--strict", action="store_true",
                   help="also fail when max_model_len x max_num_seqs does not fit")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.set_defaults(func=lambda args: cmd_plan(args, load))
