"""Affinity hits: did a keyed request reach the replica its key's last request did?

Only the ingress sees both the key and the replica that answered (through
the replica tag), so it keeps the last replica per key and reports each
follow-up as a hit or a miss.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

# Keys remembered; the oldest is forgotten first, so memory stays bounded.
AFFINITY_MEMORY = 100_000


class AffinityHits:
    """Last replica per affinity key, bounded; reports hits through ``on_result(pool, hit)``."""

    def __init__(self, on_result: Callable[[str, bool], None], memory: int = AFFINITY_MEMORY):
        self._on_result = on_result
        self._memory = memory
        self._last_replica: OrderedDict[str, str] = OrderedDict()

    def record(self, pool: str, key: str, replica: str) -> None:
        previous = self._last_replica.pop(key, None)
        if previous is not None:
            self._on_result(pool, previous == replica)
        self._last_replica[key] = replica
        if len(self._last_replica) > self._memory:
            self._last_replica.popitem(last=False)
