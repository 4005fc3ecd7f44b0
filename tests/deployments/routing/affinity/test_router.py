"""DocumentAffinityRouter at the router level: ring order, a KV tier's holder kept, placement by load.

Real Serve router objects with stand-in replicas (only what the router reads:
ids, node, zone); no cluster is started.
"""

import asyncio
import itertools
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


REQUEST_IDS = itertools.count()


def request(key: str, tokens: int = 1000, request_id: str | None = None, loop=None):
    return SimpleNamespace(
        metadata=SimpleNamespace(session_id=key, internal_request_id=request_id or f"r{next(REQUEST_IDS)}"),
        routing_context=SimpleNamespace(should_backoff=False),
        args=[SimpleNamespace(prompt=list(range(tokens)))],
        future=(loop or asyncio.new_event_loop()).create_future(),
    )


def first_choice(router, replicas, key, tokens=1000, request_id=None):
    loop = router._lazily_fetched_loop
    ranks = loop.run_until_complete(router.choose_replicas(replicas, request(key, tokens, request_id, loop)))
    return ranks[0][0].replica_id.unique_id


def replica_id(router, unique_id):
    return next(r for r in router._replicas.values() if r.replica_id.unique_id == unique_id).replica_id


def routed(router, replica_id_str, key, tokens=1000, request_id=None):
    router.on_request_routed(request(key, tokens, request_id), replica_id(router, replica_id_str), None)


def test_ring_placement_without_a_tier_follows_scale_up():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b], placement="ring")
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
    router = make_router([a, b], capacity_tokens=1_000_000, placement="ring")
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
    router = make_router([a, b], capacity_tokens=2500, placement="ring")
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
    router = make_router([a, b, c], capacity_tokens=1_000_000, placement="ring")
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


def test_a_new_document_goes_to_the_replica_with_the_least_prefill_outstanding():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    # Two documents whose ring puts both on a (what hash placement did on the GPU).
    first, second = [k for k in (f"doc:{i}" for i in range(200))
                     if router._lookup_ranked_replicas(k)[0] == a.replica_id][:2]
    routed(router, first_choice(router, [a, b], first, 16_000, "cold-1"), first, 16_000, request_id="cold-1")
    assert router.prefill_tokens(a.replica_id) == 16_000
    assert first_choice(router, [a, b], second, 16_000) == "b"


def test_follow_ups_stay_on_the_holder_and_count_only_their_question():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    routed(router, first_choice(router, [a, b], "doc:x", 16_000, "cold"), "doc:x", 16_000, request_id="cold")
    holder = router._residency.holder("doc:x").unique_id
    # The holder is busy prefilling the document, the other idle: the
    # follow-up still goes to the holder (a cache hit beats a cold prefill)
    # and adds only its 40 new tokens.
    assert first_choice(router, [a, b], "doc:x", 16_040, "warm") == holder
    routed(router, holder, "doc:x", 16_040, request_id="warm")
    assert router.prefill_tokens(replica_id(router, holder)) == 16_040
    router.on_request_completed(replica_id(router, holder), "cold")
    router.on_request_completed(replica_id(router, holder), "warm")
    assert router.prefill_tokens(replica_id(router, holder)) == 0
    assert first_choice(router, [a, b], "doc:x", 16_050) == holder


def test_ties_follow_the_keys_ring_so_every_ingress_agrees_on_an_idle_pool():
    a, b, c = FakeReplica("a"), FakeReplica("b"), FakeReplica("c")
    for key in (f"doc:{i}" for i in range(30)):
        one, other = make_router([a, b, c]), make_router([a, b, c])
        ring_first = one._lookup_ranked_replicas(key)[0].unique_id
        assert first_choice(one, [a, b, c], key) == first_choice(other, [a, b, c], key) == ring_first


def test_work_routed_but_not_yet_confirmed_counts_for_the_next_new_document():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    first, second = [k for k in (f"doc:{i}" for i in range(200))
                     if router._lookup_ranked_replicas(k)[0] == a.replica_id][:2]
    # Both chosen before Serve confirms either (two cold questions sent together).
    assert first_choice(router, [a, b], first, 16_000) == "a"
    assert first_choice(router, [a, b], second, 16_000) == "b"


def test_a_request_never_routed_gives_its_prefill_back():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    loop = router._lazily_fetched_loop
    pending = request("doc:y", 16_000, loop=loop)
    [[chosen], _] = loop.run_until_complete(router.choose_replicas([a, b], pending))
    assert router.prefill_tokens(chosen.replica_id) == 16_000
    pending.future.cancel()
    loop.run_until_complete(asyncio.sleep(0))  # done callbacks run on the loop
    assert router.prefill_tokens(chosen.replica_id) == 0


def test_a_replica_that_leaves_takes_its_prefill_with_it():
    a, b = FakeReplica("a"), FakeReplica("b")
    router = make_router([a, b])
    routed(router, "a", "doc:z", 5_000)
    router.update_replicas([b])
    router.update_replicas([a, b])
    assert router.prefill_tokens(a.replica_id) == 0


def test_placement_must_be_known():
    with pytest.raises(ValueError):
        make_router([FakeReplica("a")], placement="random")
