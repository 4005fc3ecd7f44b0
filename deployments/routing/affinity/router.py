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

Placement (``placement``): a key no replica holds goes, by default
(``load``), to the replica under the load bound with the least outstanding
prefill work (prefill_load.py), ties broken by the key's ring order, so an
idle pool places a key where every ingress replica would; its follow-ups
find it through the residency map (residency.py). ``ring`` places it at its
ring position, as this router did before (the GPU doc_qa run: two new 128k
documents hashed onto one replica prefilled together there, 25.3 s cold
median, while Ray's load-placing router had 15.8 s).

Installed on a pool deployment through ``request_router_config``
(``deployments.routing.replica_routers``); it runs in the process of the
caller (the ingress), once per pool handle.
"""

from __future__ import annotations

import math
from typing import List, Optional

from ray.serve.experimental.consistent_hash_router import ConsistentHashRouter
from ray.serve.request_router import PendingRequest, ReplicaID, RunningReplica

from deployments.routing.affinity.prefill_load import PrefillLoad
from deployments.routing.affinity.residency import KVResidency

DEFAULT_LOAD_FACTOR = 1.25
PLACEMENTS = ("load", "ring")


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
        placement = kwargs.pop("placement", "load")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        self._by_load = placement == "load"
        self._prefill = PrefillLoad()
        capacity = kwargs.pop("capacity_tokens", None)
        # Load placement needs the holder of every key (the ring no longer
        # finds it); ring placement only with a tier, as before.
        self._residency = (KVResidency(int(capacity) if capacity else None)
                           if capacity or self._by_load else None)
        # Every replica is a fallback candidate: bounded load walks the ring
        # until it finds one under the bound.
        kwargs.setdefault("num_fallback_replicas", 64)
        super().initialize_state(**kwargs)

    def update_replicas(self, replicas: List[RunningReplica]) -> None:
        super().update_replicas(replicas)
        alive = [r.replica_id for r in replicas]
        self._prefill.retain(alive)
        if self._residency is not None:
            self._residency.retain(alive)

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result) -> None:
        super().on_request_routed(pending_request, replica_id, result)
        key = pending_request.metadata.session_id
        tokens = _prompt_tokens(pending_request)
        # What the replica must prefill: the prompt, less the key's prefix it
        # already holds (a follow-up's question only).
        held = self._residency.held_tokens(replica_id, key) if self._residency is not None and key else 0
        self._prefill.add(pending_request.metadata.internal_request_id, replica_id, tokens - min(held, tokens))
        if self._residency is not None and key:
            self._residency.record(replica_id, key, tokens)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        super().on_request_completed(replica_id, internal_request_id)
        self._prefill.finish(internal_request_id)

    def prefill_tokens(self, replica_id: ReplicaID) -> int:
        """Outstanding prefill tokens this router sent to ``replica_id``."""
        return self._prefill.tokens(replica_id)

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
        if home is None and self._by_load:
            # No replica under the bound holds it: the least outstanding
            # prefill first; sorted() is stable, so ties keep ring order.
            under = sorted(under, key=lambda r: self.prefill_tokens(r.replica_id))
        elif home is not None:
            # Its KV is there (GPU or tier): a hit (or a reload) beats a
            # cold prefill anywhere else.
            under.remove(home)
            under.insert(0, home)
        ranks = under + over
        if pending_request is not None:
            self._count_tentatively(pending_request, ranks[0].replica_id)
        # Ring order within each group keeps the choice deterministic per key.
        return [[r] for r in ranks]

    def _count_tentatively(self, pending_request: PendingRequest, replica_id: ReplicaID) -> None:
        """Count the request's prefill on its first choice now: Serve confirms
        the replica (on_request_routed) only after a round trip to it, and a
        new document routed meanwhile must see this one's work. Confirmation
        moves the count to the replica that took it; a request that is never
        routed (cancelled, failed) drops it."""
        request_id = pending_request.metadata.internal_request_id
        key = pending_request.metadata.session_id
        tokens = _prompt_tokens(pending_request)
        held = self._residency.held_tokens(replica_id, key) if self._residency is not None else 0
        self._prefill.add(request_id, replica_id, tokens - min(held, tokens))

        def unrouted(future) -> None:
            if future.cancelled() or future.exception() is not None:
                self._prefill.finish(request_id)

        pending_request.future.add_done_callback(unrouted)


def _prompt_tokens(pending_request: PendingRequest) -> int:
    """Prompt length of a pool request: the ingress sends token ids (1 if unknown)."""
    for arg in pending_request.args:
        prompt = getattr(arg, "prompt", None)
        if isinstance(prompt, list):
            return len(prompt)
    return 1
