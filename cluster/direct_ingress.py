"""Serve's direct ingress: the ingress replicas serve the API on ports of their own.

Why: a short request through Serve's HTTP proxy takes two hops (proxy ->
ingress replica -> pool replica); on one H200 the proxy's hop was most of what
our path added to a 1k-token request (benchmarks/README.md, "With Serve's direct
ingress"). With direct ingress every ingress replica runs its own HTTP server,
and a load balancer that sends there skips the proxy. This is Serve's own
feature (Ray 2.58-2.60), not ours: we only switch it on and say where the
replicas listen.

Serve reads the switch from the environment when ``ray.serve`` is imported, in
every process, so it has to be in the environment of the processes Ray starts:
set before ``ray.init`` for a local Ray, and on every node of an existing one.
"""

from __future__ import annotations

import os

from cluster.config import ClusterConfig

DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
# How long Serve keeps a stopping ingress replica serving (default 30 s), so a
# load balancer in front notices before the port goes away.
DRAINING_PERIOD_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


def enable_for_local_ray(cluster: ClusterConfig) -> None:
    """Put the profile's setting where the Ray about to start will read it.

    Only ever switches it on: a user who set the variable for the whole Ray
    keeps it, as with Serve's other environment settings.
    """
    if cluster.ingress.direct_ingress:
        os.environ[DIRECT_INGRESS_ENV] = "1"


def skip_draining_without_balancer() -> None:
    """For a local Ray with no load balancer in front (benchmarks, tests):
    stopping an ingress replica need not wait Serve's draining period.
    Set before ``ray.init``; a value already in the environment wins."""
    os.environ.setdefault(DRAINING_PERIOD_ENV, "1")


def ingress_replica_urls(app_name: str) -> list[str]:
    """``http://ip:port`` of every ingress replica's own server; empty when Serve runs without direct ingress.

    Serve keeps these as the app's target groups (what its HAProxy mode
    forwards to). With direct ingress off, the groups hold the proxies
    instead, whose actor names are not replica names.
    """
    import ray
    from ray.serve._private.common import REPLICA_ID_FULL_ID_STR_PREFIX
    from ray.serve._private.common import RequestProtocol
    from ray.serve.context import _get_global_client

    # No public API lists them (Ray 2.58-2.60); the controller's method is the
    # one Serve's own HAProxy manager calls.
    controller = _get_global_client()._controller
    groups = ray.get(controller.get_target_groups.remote(app_name))
    return sorted(
        f"http://{target.ip}:{target.port}"
        for group in groups
        if group.protocol == RequestProtocol.HTTP
        for target in group.targets
        if target.name.startswith(REPLICA_ID_FULL_ID_STR_PREFIX)
    )


def missing_on_cluster_warning(cluster: ClusterConfig, urls: list[str]) -> str | None:
    """What to tell a user whose profile asks for direct ingress that the Ray cluster did not start."""
    if cluster.ingress.direct_ingress and not urls:
        return (
            "ingress.direct_ingress is set but no ingress replica serves on its own port: the Ray "
            f"cluster was started without {DIRECT_INGRESS_ENV}=1 (set it on every node before "
            "`ray start`). Requests still reach the API through Serve's proxy."
        )
    return None
