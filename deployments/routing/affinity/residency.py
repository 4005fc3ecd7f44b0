"""Where a document's KV still lives: the replica that last served its key, while it holds it.

The ring (router.py) is a pure function of the replica set: when replicas
are added or restarted, a share of the keys moves to a replica that has never
seen them. Without a KV tier little is lost, since GPU KV turns over in
minutes. With a tier a replica keeps many documents reloadable for hours
(GPU KV + tier, the planner's ``replica_capacity_tokens``), so a moved key
would pay a cold prefill while its KV waits on the old replica.

This model remembers, per replica, the keys it served and their prompt
lengths in least-recently-used order, and forgets the oldest once their sum
passes the replica's capacity: the same order in which vLLM's GPU prefix
cache and its offloading tier (LRU by default) evict. The router prefers a
key's holder over the ring while the holder is alive and under the load
bound. Memory is bounded: a replica remembers at most ``capacity_tokens``
keys of at least one token each.

Without a tier (``capacity_tokens`` None) the router still needs the holder:
it places a new key by load (prefill_load.py), not by a pure function of the
key, so only this map finds its follow-ups. The holder is then the replica
that last served the key, with no model of eviction (a follow-up on a
replica that evicted it costs the cold prefill it would cost anywhere), and
at most ``max_keys`` keys are remembered per replica.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable, Iterable


class KVResidency:
    """Per-replica LRU of affinity keys, bounded by the replica's KV capacity in tokens."""

    def __init__(self, capacity_tokens: int | None, max_keys: int = 100_000):
        if capacity_tokens is not None and capacity_tokens < 1:
            raise ValueError(f"capacity_tokens must be >= 1, got {capacity_tokens!r}")
        self._capacity = capacity_tokens
        self._max_keys = max_keys
        self._keys: dict[Hashable, OrderedDict[str, int]] = {}
        self._used: dict[Hashable, int] = {}
        self._holder: dict[str, Hashable] = {}

    def record(self, replica: Hashable, key: str, tokens: int) -> None:
        """``replica`` served ``key`` with a prompt of ``tokens`` tokens (now its newest)."""
        tokens = max(1, tokens)
        previous = self._holder.get(key)
        if previous is not None and previous != replica:
            # Served elsewhere now (load spill): the newest copy is the one
            # to follow; the old replica may still hold it, but it is older.
            self._drop(previous, key)
        keys = self._keys.setdefault(replica, OrderedDict())
        self._used[replica] = self._used.get(replica, 0) - keys.pop(key, 0) + tokens
        keys[key] = tokens
        self._holder[key] = replica
        while keys and (len(keys) > self._max_keys
                        or (self._capacity is not None and self._used[replica] > self._capacity)):
            oldest = next(iter(keys))
            self._drop(replica, oldest)

    def holder(self, key: str) -> Hashable | None:
        """The replica that still holds ``key``'s KV (GPU or tier), if any."""
        return self._holder.get(key)

    def held_tokens(self, replica: Hashable, key: str) -> int:
        """Prompt tokens of ``key`` that ``replica`` holds (0: none)."""
        return self._keys.get(replica, {}).get(key, 0)

    def retain(self, replicas: Iterable[Hashable]) -> None:
        """Forget replicas that left the pool: their KV went with them."""
        alive = set(replicas)
        for replica in [r for r in self._keys if r not in alive]:
            for key in list(self._keys[replica]):
                self._drop(replica, key)
            del self._keys[replica], self._used[replica]

    def _drop(self, replica: Hashable, key: str) -> None:
        tokens = self._keys[replica].pop(key, 0)
        self._used[replica] -= tokens
        if self._holder.get(key) == replica:
            del self._holder[key]
