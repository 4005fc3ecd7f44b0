"""Drain this Ray node without cutting requests: what the Helm chart's preStop runs.

``python -m cluster drain-node --deadline-s N`` (helm/templates/_lifecycle.tpl)
does what a node's owner must do before taking it away, through Ray's own
path, the one KubeRay's autoscaler takes for an idle pod:

1. It tells Ray's GCS that this node goes away in N seconds (DrainNode with
   reason PREEMPTION and that deadline, as ``ray drain-node`` sends it; Ray
   keeps that command hidden and unstable, so the call is made here, in one
   process with the wait). Ray places nothing new on the node. Serve's
   controller (``deployment_state.migrate_replicas_on_draining_nodes``) starts
   a replacement of every replica here on another node and stops the one here
   gracefully once its replacement runs, or at the latest at the deadline less
   the deployment's graceful_shutdown_timeout_s. A stopping replica takes no
   new request and finishes the ones it holds (graceful_shutdown_timeout_s;
   each pool's follows its request timeout, deployments/serve_options.py).
   Once no replica is left here, Serve drains the node's proxy: its health
   check fails, so load balancers stop sending, and it reports DRAINED when
   its last request has ended.
2. It waits until no Serve replica lives on the node and its proxy is drained
   (or it has none), then returns 0; at the deadline it gives up and returns 1
   (Kubernetes records a FailedPreStopHook event with the message).

The node that hosts Serve's controller (the head) keeps its proxy: Serve never
drains it, so there only the replicas are waited for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger("longctx.drain")

SERVE_REPLICA_CLASS_PREFIX = "ServeReplica:"
DRAINED = "DRAINED"
POLL_S = 1.0
# Looks that fail one after another (about as many seconds): this node's own
# raylet, which the command's driver talks through, has gone with the drain.
LOOK_FAILURES_MEAN_GONE = 5


class DrainRefused(RuntimeError):
    """Ray's GCS did not accept the drain request."""


@dataclass(frozen=True)
class NodeWork:
    """What still runs Serve traffic on a node."""

    replicas: tuple[str, ...]
    proxy: str | None  # Serve's proxy status on the node; None: none there, or it is the controller's

    @property
    def done(self) -> bool:
        return not self.replicas and self.proxy in (None, DRAINED)

    def describe(self) -> str:
        replicas = ", ".join(self.replicas) or "none"
        return f"Serve replicas here: {replicas}; proxy: {self.proxy or 'none to drain'}"


def request_drain(node_id: str, deadline_s: float, message: str) -> None:
    """Ask the GCS to drain ``node_id``, which is gone ``deadline_s`` from now (DrainNode RPC)."""
    import ray
    from ray.core.generated import autoscaler_pb2

    gcs_client = ray._private.worker.global_worker.gcs_client
    deadline_ms = time.time_ns() // 1_000_000 + int(deadline_s * 1000)
    accepted, why = gcs_client.drain_node(
        node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"), message, deadline_ms
    )
    if not accepted:
        raise DrainRefused(f"Ray refused to drain node {node_id}: {why}")


def serve_replicas_on(node_id: str) -> tuple[str, ...]:
    """Class names (ServeReplica:<app>:<deployment>) of the live Serve replica actors on the node.

    Read from the GCS's actor table, so no dashboard is needed (a pod's
    preStop may run while the head's dashboard is gone).
    """
    from ray._private.state import actors

    return tuple(sorted(
        info["ActorClassName"] for info in actors(actor_state_name="ALIVE").values()
        if info["ActorClassName"].startswith(SERVE_REPLICA_CLASS_PREFIX)
        and info["Address"]["NodeID"] == node_id
    ))


def serve_proxy_on(node_id: str) -> str | None:
    """Serve's proxy status on the node, None if it has none or Serve is not running."""
    from ray import serve

    try:
        status = serve.status()
    except Exception:  # no Serve controller (Serve never started, or gone): nothing to drain
        return None
    proxy = status.proxies.get(node_id)
    if proxy is None:
        return None
    controller_node = _controller_node()
    if controller_node == node_id:
        return None  # Serve keeps the controller's node's proxy up; there is nothing to wait for
    return str(getattr(proxy, "value", proxy))


def _controller_node() -> str | None:
    from ray._private.state import actors

    for info in actors(actor_state_name="ALIVE").values():
        if info["ActorClassName"] == "ServeController":
            return info["Address"]["NodeID"]
    return None


def node_alive(node_id: str) -> bool:
    import ray

    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


def node_work(node_id: str) -> NodeWork:
    # Ray retires a drained node once nothing runs there (the GCS then reports
    # it dead, with the drain's reason): nothing of Serve's is left on it.
    if not node_alive(node_id):
        return NodeWork(replicas=(), proxy=None)
    return NodeWork(replicas=serve_replicas_on(node_id), proxy=serve_proxy_on(node_id))


def wait_until_drained(node_id: str, deadline_s: float, *, look: Callable[[str], NodeWork] = node_work,
                       poll_s: float = POLL_S, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> NodeWork:
    """Poll the node until nothing of Serve's runs there or the deadline passes; the last look."""
    end = clock() + deadline_s
    last = None
    failures = 0
    while True:
        try:
            work = look(node_id)
            failures = 0
        except Exception:  # the GCS briefly unreachable, or this node's raylet gone after its drain
            failures += 1
            logger.warning("could not look at node %s (%d in a row)", node_id, failures, exc_info=True)
            if failures >= LOOK_FAILURES_MEAN_GONE:
                return NodeWork(replicas=(), proxy=None)
            sleep(min(poll_s, max(0.0, end - clock())))
            if clock() >= end:
                return last or NodeWork(replicas=("unknown",), proxy=None)
            continue
        if work != last:
            logger.info("%s", work.describe())
            last = work
        if work.done or clock() >= end:
            return work
        sleep(min(poll_s, max(0.0, end - clock())))


def drain_node(node_id: str | None, deadline_s: float, message: str) -> int:
    """Drain a node of the connected cluster (default: this process's own); the exit status."""
    import ray

    node_id = node_id or ray.get_runtime_context().get_node_id()
    started = time.monotonic()
    request_drain(node_id, deadline_s, message)
    logger.info("node %s draining, deadline in %.0f s", node_id, deadline_s)
    work = wait_until_drained(node_id, deadline_s)
    took = time.monotonic() - started
    if work.done:
        logger.info("node %s drained in %.1f s", node_id, took)
        return 0
    logger.error("node %s not drained after %.0f s: %s", node_id, took, work.describe())
    return 1
