"""Replica-level policies: the Serve request router each ``routing.policy`` installs.

The one list of replica routers (README.md has a section per policy). A pool
deployment names its router by class in ``request_router_config``; Serve
builds one router per handle in the caller's process (the ingress) and
passes ``request_router_kwargs`` to its ``initialize_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from cluster.config import PoolConfig
from deployments.routing.affinity.router import DocumentAffinityRouter
from deployments.routing.prefix_cache import TokenPrefixCacheAffinityRouter


@dataclass(frozen=True)
class ReplicaRouter:
    """A request router class and how a pool's config becomes its kwargs."""

    router_class: type
    # (pool, tokens a replica keeps reloadable with its KV tier, or None) -> kwargs
    kwargs: Callable[[PoolConfig, int | None], dict[str, Any]]


def _affinity_kwargs(pool: PoolConfig, capacity_tokens: int | None) -> dict[str, Any]:
    # A replica running fewer sequences than its engine batches at once is
    # never "overloaded": min_load is the engine's max_num_seqs.
    kwargs: dict[str, Any] = {"load_factor": pool.routing.load_factor, "min_load": pool.engine.max_num_seqs,
                              "placement": pool.routing.placement}
    if capacity_tokens:
        # With a tier, keys follow the replica that holds their KV (residency.py).
        kwargs["capacity_tokens"] = capacity_tokens
    return kwargs


# Every RoutingConfig.policy; None keeps Serve's default PowerOfTwoChoicesRequestRouter.
REPLICA_ROUTERS: Mapping[str, ReplicaRouter | None] = MappingProxyType(
    {
        "affinity": ReplicaRouter(DocumentAffinityRouter, _affinity_kwargs),
        "power_of_two": None,
        "prefix_cache": ReplicaRouter(TokenPrefixCacheAffinityRouter, lambda pool, capacity: {}),
    }
)


def request_router_config(pool: PoolConfig, capacity_tokens: int | None = None) -> dict[str, Any] | None:
    """Serve ``request_router_config`` of the pool; None keeps Serve's default.

    ``capacity_tokens``: what one replica keeps reloadable (GPU KV + KV tier,
    cluster.planner.kv_tier.replica_capacity_tokens); None without a tier.
    """
    router = REPLICA_ROUTERS[pool.routing.policy]
    if router is None:
        return None
    return {"request_router_class": router.router_class,
            "request_router_kwargs": router.kwargs(pool, capacity_tokens)}
