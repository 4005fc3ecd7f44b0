"""The command line every GPU stage dispatcher shares: the stage, its results folder, the checkpoint folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.gpu.stage_log import StageLog


def stage_parser(module: str, doc: str | None, stages: dict) -> argparse.ArgumentParser:
    """The arguments every stage dispatcher takes: the stage, its results folder, the checkpoints."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=list(stages))
    parser.add_argument("--results", type=Path, required=True, help="folder of the stage JSONs")
    parser.add_argument("--models", type=Path, default=Path("/root/models"), help="checkpoint folder")
    return parser


def run_stage(stages: dict, args, module: str, argv: list[str] | None, log_prefix: str = "") -> int:
    """Run ``args.stage`` of the dispatcher ``module``; every stage but ``summary`` gets a StageLog."""
    command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    log = None if args.stage == "summary" else StageLog(args.results, f"{log_prefix}{args.stage}", command)
    stages[args.stage](args, log)
    return 0
