"""DocumentAffinityRouter at the router level: ring order, and a KV tier's holder kept.

Real Serve router objects with stand-in replicas (only what the router reads:
ids, node, zone); no cluster is started.
"""

import asyncio
from types import SimpleNamespace

import pytest
from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID

from deployments.routing.affinity.residency import KVResidency
from deployments.routing.affinity.router import DocumentAffinityRouter

DEPLOYMENT = DeploymentID(name="pool-p", app_name="longctx")


class FakeReplica:
    def __init__(self, unique_id: str):
        self.replica_id = ReplicaID(unique_id=unique_id, deployment_id=DEPLOYMENT)
        self.node_id = "node"
        self.availability_zone = None
        self.multiplexed_model_ids = set()
        self.max_ongoing_requests = 16

    def push_proxy_handle(self, handle):
        pass


def make_router(replicas, **kwargs):
    router = DocumentAffinityRouter(deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN)
    router.initialize_state(**{"min_load": 1, **kwargs})
    # Serve fetches its loop on the first replica update (to start routing
    # tasks for pending requests; there are none here).
    router._lazily_fetched_loop = asyncio.new_event_loop()
    router.update_replicas(replicas)
    return router


def request(key: str, tokens: int = 1000):
    return SimpleNamespace(
        metadata=SimpleNamespace(session_id=key),
        routing_context=SimpleNamespace(should_backoff=False),
        args=[SimpleNamespace(prompt=list(range(tokens)))],
    )


def first_choice(router, replicas, key, tokens=1000):
    ranks = router._lazily_fetched_loop.run_until_complete(router.choose_replicas(replicas, request(key, tokens)))
    return ranks[0][0].replica_id.unique_id


def routed(router, replica_id_str, key, tokens=1000):
    replica = next(r for r in router._replicas.values() if r.replica_id.unique_id == replica_id_str)
    router.on_request_routed(request(key, tokens), replica.replica_id, None)


def test_without_a_tier_the_ring_decides_and_follows_scale_up():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    keys = [f"doc:{i}" for i in range(40)]
    before = {k: first_choice(router, [a, b], k) for k in keys}
    for k in keys:
        routed(router, before[k], k)
    c = FakeReplica("c")
    router.update_replicas([a, b, c])
    moved = [k for k in keys if first_choice(router, [a, b, c], k) == "c"]
    # Consistent hashing hands the new replica a share of the keys: cold there.
    assert moved


def test_with_a_tier_documents_stay_on_the_replica_that_holds_them():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b], capacity_tokens=1_000_000)
    keys = [f"doc:{i}" for i in range(40)]
    before = {k: first_choice(router, [a, b], k) for k in keys}
    for k in keys:
        routed(router, before[k], k)
    c = FakeReplica("c")
    router.update_replicas([a, b, c])
    # 40 x 1000 tokens fit in each replica's GPU KV + tier: none is moved.
    assert {k: first_choice(router, [a, b, c], k) for k in keys} == before
    # A new document still goes by the ring, so the new replica gets work.
    fresh = [f"new:{i}" for i in range(40)]
    assert "c" in {first_choice(router, [a, b, c], k) for k in fresh}


def test_evicted_documents_return_to_the_ring():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b], capacity_tokens=2500)
    key = next(k for k in (f"doc:{i}" for i in range(100)) if first_choice(router, [a, b], k) == "a")
    routed(router, "b", key)  # served by b once (e.g. a was over its load bound)
    assert first_choice(router, [a, b], key) == "b"
    for i in range(3):  # b serves newer documents until the oldest is evicted
        routed(router, "b", f"other:{i}")
    assert first_choice(router, [a, b], key) == "a"


def test_holder_over_the_load_bound_is_skipped():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b], capacity_tokens=1_000_000, load_factor=1.0)
    key = next(k for k in (f"doc:{i}" for i in range(100)) if first_choice(router, [a, b], k) == "a")
    routed(router, "b", key)
    router._replica_queue_len_cache.update(b.replica_id, 10)
    assert first_choice(router, [a, b], key) == "a"


def test_a_replica_that_leaves_takes_its_documents_with_it():
    a, b, c = FakeReplica("a"), FakeReplica("b"), FakeReplica("c")
    router = make_router([a, b, c], capacity_tokens=1_000_000)
    key = next(k for k in (f"doc:{i}" for i in range(100)) if first_choice(router, [a, b, c], k) == "a")
    routed(router, "c", key)
    router.update_replicas([a, b])
    assert first_choice(router, [a, b], key) == "a"


def test_residency_counts_tokens_in_lru_order():
    residency = KVResidency(capacity_tokens=10)
    residency.record("r1", "x", 4)
    residency.record("r1", "y", 4)
    residency.record("r1", "x", 4)  # x is now the newest
    residency.record("r1", "z", 4)  # 12 > 10: y, the oldest, goes
    assert (residency.holder("x"), residency.holder("y"), residency.holder("z")) == ("r1", None, "r1")
    residency.record("r1", "huge", 11)  # larger than the whole capacity: never held
    assert residency.holder("huge") is None
    with pytest.raises(ValueError):
        KVResidency(0)
