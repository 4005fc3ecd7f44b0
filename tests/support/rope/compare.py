"""Helpers to compare an engine's prompt logprobs with the reference.

Shared by tests/deployments/rope (engines in-process) and
tests/e2e/test_long_context.py (logprobs back through the router).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# Max abs difference in per-token prompt logprobs (nats) counted as agreement.
# Measured engine-vs-reference differences on the float32 tiny models are
# ~1e-5 (docs/long-context.md, "Measured agreement"); a wrong rotary base moves them by > 1.
# 1e-3 leaves two orders of magnitude for thread-count and chunking noise.
TOLERANCE = 1e-3

# Below the BPE merges' ids are the special tokens; random prompts avoid them.
_FIRST_ORDINARY_ID = 9
BOS = 1


def random_prompt(n_tokens: int, *, vocab_size: int = 8000, seed: int = 0) -> list[int]:
    """A reproducible ``n_tokens``-long prompt: BOS then uniform ordinary ids.

    Random ids rather than text so that every position carries information
    and the logprobs depend on the whole context, not on a repeated pattern.
    """
    rng = random.Random(seed * 1_000_003 + n_tokens)
    return [BOS] + [rng.randrange(_FIRST_ORDINARY_ID, vocab_size) for _ in range(n_tokens - 1)]


def prompt_logprobs_from_output(output, token_ids: Sequence[int]) -> list[float]:
    """Per-token logprobs of the prompt's own tokens from a vLLM RequestOutput
    created with ``SamplingParams(prompt_logprobs=0)``; position 0 has none."""
    entries = output.prompt_logprobs
    return [entries[i][token_ids[i]].logprob for i in range(1, len(token_ids))]


def max_abs_diff(engine: Sequence[float], reference: Sequence[float]) -> float:
    """Max abs difference; ``inf`` when the engine gave any non-finite value."""
    if len(engine) != len(reference):
        raise ValueError(f"length mismatch: {len(engine)} vs {len(reference)}")
    worst = 0.0
    for e, r in zip(engine, reference):
        e, r = float(e), float(r)
        if not math.isfinite(e):
            return math.inf
        worst = max(worst, abs(e - r))
    return worst
