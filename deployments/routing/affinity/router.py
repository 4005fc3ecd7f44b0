"""Replica choice inside a pool: bounded-load consistent hashing on the affinity key.

A question about a document is cheap only on the replica whose prefix cache
already holds the document's KV (stock vLLM on one H100: 110x faster than a
cold prefill at 128k tokens). The ingress passes each request's affinity key
(key.py) as Serve's ``session_id``; this router maps the key onto a
consistent-hash ring of replicas, as Serve's own ``ConsistentHashRouter``
does, but skips a replica whose load is over ``load_factor`` x the pool's
mean (bounded-load consistent hashing, Mirrokni et al. 2018) once it runs as
many requests as its engine batches at once (``min_load``), so one hot
document cannot pile every request on one replica. Requests without a key go
to the least-loaded replica.

With a KV tier (``capacity_tokens`` set: the replica's GPU KV plus tier, from
the planner), a key stays with the replica that holds its KV even when the
ring moves it (residency.py), as long as that replica is alive, under the
load bound and has not evicted it by the model's LRU count.

Installed on a pool deployment through ``request_router_config``
(``deployments.routing.replica_routers``); it runs in the process of the
caller (the ingress), once per pool handle.
"""

from __future__ import annotations

import math
from typing import List, Optional

from ray.serve.experimental.consistent_hash_router import ConsistentHashRouter
from ray.serve.request_router import PendingRequest, ReplicaID, RunningReplica

from deployments.routing.affinity.residency import KVResidency

DEFAULT_LOAD_FACTOR = 1.25


class DocumentAffinityRouter(ConsistentHashRouter):
    """Consistent hashing on the affinity key, bounded by replica load."""

    def initialize_state(self, **kwargs) -> None:
        load_factor = kwargs.pop("load_factor", DEFAULT_LOAD_FACTOR)
        if not isinstance(load_factor, (int, float)) or load_factor < 1.0:
            raise ValueError(f"load_factor must be a number >= 1, got {load_factor!r}")
        self._load_factor = float(load_factor)
        # A replica running fewer than its engine's max_num_seqs sequences
        # starts a new one at once: below that it is never "overloaded",
        # however uneven the pool's (small) counts are.
        self._min_load = int(kwargs.pop("min_load", 1))
        # Without a tier the ring alone decides, as before.
        capacity = kwargs.pop("capacity_tokens", None)
        self._residency = KVResidency(int(capacity)) if capacity else None
        # Every replica is a fallback candidate: bounded load walks the ring
        # until it finds one under the bound.
        kwargs.setdefault("num_fallback_replicas", 64)
        super().initialize_state(**kwargs)

    def update_replicas(self, replicas: List[RunningReplica]) -> None:
        super().update_replicas(replicas)
        if self._residency is not None:
            self._residency.retain(r.replica_id for r in replicas)

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result) -> None:
        super().on_request_routed(pending_request, replica_id, result)
        key = pending_request.metadata.session_id
        if self._residency is not None and key:
            self._residency.record(replica_id, key, _prompt_tokens(pending_request))

    def _load(self, replica_id: ReplicaID) -> int:
        return self._replica_queue_len_cache.get(replica_id) or 0

    async def choose_replicas(
        self,
        candidate_replicas: List[RunningReplica],
        pending_request: Optional[PendingRequest] = None,
    ) -> List[List[RunningReplica]]:
        if not candidate_replicas:
            return []
        key = pending_request.metadata.session_id if pending_request is not None else ""
        if not key:
            # No document or long prefix to keep together: least loaded wins
            # (the base class probes the queue lengths of the whole rank).
            return [candidate_replicas]
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True
        ranked = [self._replicas[r] for r in self._lookup_ranked_replicas(key) if r in self._replicas]
        if not ranked:
            return [candidate_replicas]
        total = sum(self._load(r.replica_id) for r in ranked)
        bound = max(math.ceil(self._load_factor * (total + 1) / len(ranked)), self._min_load)
        under = [r for r in ranked if self._load(r.replica_id) + 1 <= bound]
        over = [r for r in ranked if r not in under]
        holder = self._residency.holder(key) if self._residency is not None else None
        home = next((r for r in under if r.replica_id == holder), None)
        if home is not None:
            # Its KV is there (GPU or tier): a reload beats a cold prefill
            # on the ring's choice.
            under.remove(home)
            under.insert(0, home)
        # Ring order within each group keeps the choice deterministic per key.
        return [[r] for r in under + over]


def _prompt_tokens(pending_request: PendingRequest) -> int:
    """Prompt length of a pool request: the ingress sends token ids (1 if unknown)."""
    for arg in pending_request.args:
        prompt = getattr(arg, "prompt", None)
        if isinstance(prompt, list):
            return len(prompt)
    return 1
