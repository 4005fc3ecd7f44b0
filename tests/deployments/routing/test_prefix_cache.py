"""The prefix-cache router through Serve's own routing loop: every request gets a replica.

Real Serve routing tasks, pending-request queues and queue-length probes, with
stand-in replicas (ids, a node, a queue length). The prefix tree is a Ray
actor and is left out: each request names the replica its prefix matched,
which is what the tree would answer. What is under test is the loop around
that answer, which on Ray 2.58/2.59 retired routing tasks that still held a
request (ray-project/ray#66325); such a request waited forever.
"""

import asyncio
import random
from types import SimpleNamespace

import pytest
from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID, RequestMetadata
from ray.serve._private.request_router.common import PendingRequest
from ray.serve._private.request_router.request_router import RequestRouter

from deployments.routing.prefix_cache import TokenPrefixCacheAffinityRouter

DEPLOYMENT = DeploymentID(name="pool-p", app_name="longctx")


class BusyReplica:
    """A replica that runs one request at a time and answers probes after a short delay."""

    def __init__(self, unique_id: str, rng: random.Random):
        self.replica_id = ReplicaID(unique_id=unique_id, deployment_id=DEPLOYMENT)
        self.node_id = "node"
        self.availability_zone = None
        self.multiplexed_model_ids = set()
        self.max_ongoing_requests = 1
        self.running = 0
        self._rng = rng

    def push_proxy_handle(self, handle):
        pass

    async def get_queue_len(self, *, deadline_s: float) -> int:
        await asyncio.sleep(self._rng.uniform(0, 0.002))
        return self.running


class MatchedPrefixRouter(TokenPrefixCacheAffinityRouter):
    """The router with its tree's answer given by the request (see the module docstring)."""

    def initialize_state(self, **kwargs):
        super().initialize_state(tree_actor=object(), **kwargs)

    def update_replicas(self, replicas):
        RequestRouter.update_replicas(self, replicas)  # the tree's tenant list is skipped

    async def _prefix_match_best_replicas(self, pending_request, candidate_replicas):
        wanted = pending_request.args[0].matched_replica
        return [[r for r in candidate_replicas if r.replica_id.unique_id == wanted]]

    def on_request_routed(self, pending_request, replica_id, result):
        pass  # the tree's insert


async def serve_requests(count: int, concurrency: int, seed: int) -> int:
    """Sends ``count`` requests, ``concurrency`` at a time; returns how many got no replica in 5 s."""
    rng = random.Random(seed)
    replicas = [BusyReplica("a", rng), BusyReplica("b", rng)]
    router = MatchedPrefixRouter(deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN,
                                 initial_backoff_s=0.001, max_backoff_s=0.005)
    router.initialize_state()
    router._lazily_fetched_loop = asyncio.get_running_loop()
    router.update_replicas(replicas)
    lost = 0
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        nonlocal lost
        async with slots:
            request = PendingRequest(
                args=[SimpleNamespace(matched_replica=rng.choice("ab"), prompt=[1, 2, 3])], kwargs={},
                metadata=RequestMetadata(request_id=str(index), internal_request_id=str(index)))
            try:
                replica = await asyncio.wait_for(router._choose_replica_for_request(request), timeout=5)
            except asyncio.TimeoutError:
                lost += 1
                return
            replica.running += 1
            await asyncio.sleep(rng.uniform(0, 0.01))
            replica.running -= 1

    await asyncio.gather(*(one(i) for i in range(count)))
    return lost


@pytest.mark.parametrize("seed", range(3))
def test_every_request_gets_a_replica_under_contention(seed):
    # Two replicas of one slot each, three requests at a time, each wanting
    # a given replica: routing tasks wait in backoff while others finish,
    # which is when Ray 2.58's loop retired a task holding a request.
    assert asyncio.run(serve_requests(count=300, concurrency=3, seed=seed)) == 0


def test_the_task_that_owes_a_request_is_not_retired():
    router = MatchedPrefixRouter(deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN)
    router.initialize_state()

    async def inside_a_routing_task():
        owed = PendingRequest(args=[], kwargs={}, metadata=RequestMetadata(request_id="x", internal_request_id="x"))
        router._pending_requests_to_route.append(owed)
        assert router._get_next_pending_request_to_route() is owed
        router._routing_tasks.update({asyncio.current_task(), object()})
        # Nothing else is pending: Serve's target is 0, yet this task must stay.
        assert router.target_num_routing_tasks == 2
        owed.future.set_result("replica")
        assert router.target_num_routing_tasks == 0

    asyncio.run(inside_a_routing_task())
