"""`python -m cluster drain-node`: when a node counts as drained, the deadline, and Ray's own answer.

The whole path (a Serve replica moved off a draining node while its long
request finishes) runs in tests/e2e_nodes/; here the parts that need no
engines: the command line, the deadline, and a real Ray's DrainNode.
"""

from __future__ import annotations

import pytest

from cluster.cli import main
from cluster.drain import DRAINED, NodeWork, wait_until_drained


@pytest.mark.parametrize("work, done", [
    (NodeWork(replicas=(), proxy=None), True),
    (NodeWork(replicas=(), proxy=DRAINED), True),
    (NodeWork(replicas=(), proxy="DRAINING"), False),  # its last request is still going
    (NodeWork(replicas=("ServeReplica:longctx:pool-a",), proxy=None), False),
])
def test_a_node_is_drained_when_no_replica_and_no_proxy_request_is_left(work, done):
    assert work.done is done


class _Clock:
    """Virtual time for the deadline: the wait's own arithmetic, without waiting for real."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_ends_when_the_node_is_empty():
    clock = _Clock()
    busy = NodeWork(replicas=("ServeReplica:longctx:pool-a",), proxy=None)
    looks = iter([busy, busy, NodeWork(replicas=(), proxy=None)])
    work = wait_until_drained("n", 60, look=lambda node: next(looks), poll_s=1, clock=clock, sleep=clock.sleep)
    assert work.done and clock.now == 2


def test_a_node_that_cannot_be_looked_at_any_more_is_gone():
    """The raylet the command talks through retires with the drain: repeated failures end the wait."""
    clock = _Clock()

    def look(node):
        raise ConnectionError("raylet gone")

    work = wait_until_drained("n", 60, look=look, poll_s=1, clock=clock, sleep=clock.sleep)
    assert work.done and clock.now < 10


def test_the_wait_gives_up_at_the_deadline():
    clock = _Clock()
    busy = NodeWork(replicas=("ServeReplica:longctx:pool-a",), proxy="DRAINING")
    work = wait_until_drained("n", 30, look=lambda node: busy, poll_s=4, clock=clock, sleep=clock.sleep)
    assert not work.done and clock.now == 30  # never sleeps past the deadline


def test_deadline_must_be_positive():
    with pytest.raises(SystemExit, match="positive"):
        main(["drain-node", "--deadline-s", "0"])


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from cluster.cli import _init_local_ray
    from cluster.config import load_config, profile_path

    from benchmarks.common.ports import free_loopback_port

    _init_local_ray(load_config(profile_path("cpu-demo"), env={}), metrics_port=free_loopback_port(),
                    ray_bind="loopback")
    yield
    ray.shutdown()


def test_ray_drains_a_node_without_serve_at_once(local_ray):
    import ray

    from cluster.drain import drain_node

    # The only node: nothing of Serve's runs there, so it counts as drained as soon as Ray accepts.
    me = ray.get_runtime_context().get_node_id()
    assert drain_node(None, 30, "drained by test_drain") == 0
    # The GCS holds the drain, with its reason, for the node.
    (node,) = [n for n in ray.nodes() if n["NodeID"] == me]
    assert node["DeathReasonMessage"] == "drained by test_drain"

