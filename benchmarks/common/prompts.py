"""Prompts of a given length as random token ids: the same ids for every engine compared."""

from __future__ import annotations

import random

# Token ids the offline tokenizer defines, past its special tokens.
ID_RANGE = (16, 8000)


def random_ids(n: int, seed: int) -> list[int]:
    """``n`` token ids drawn from ``ID_RANGE``; one seed gives one prompt."""
    rng = random.Random(seed)
    return [rng.randrange(*ID_RANGE) for _ in range(n)]
