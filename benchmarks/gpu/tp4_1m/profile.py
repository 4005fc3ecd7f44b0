"""The TP=4 run's profile, pools and prompts, which its stages share."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common.prompts import random_ids

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "deployments" / "h200x4-1m.yaml"
SUMMARY = REPO / "benchmarks" / "results" / "gpu" / "tp4_1m.json"
LONG, SHORT = "il25-long", "il25-short"
# The prompt sizes: half the window, and 1M less room for a few output tokens.
SIZES = (524_288, 1_048_000)


def prompt_ids(size: int) -> list[int]:
    """The prompt of ``size`` tokens; ours and stock send the same one."""
    return random_ids(size, seed=size + 7)


def load_profile(args):
    """The profile ``--profile`` names (a name or a path), with the ``--set`` overrides."""
    from cluster.config import load_config, profile_path

    return load_config(profile_path(str(args.profile)), args.set)
