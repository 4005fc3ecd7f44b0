"""Each routing policy installs its router on the pool deployment by class."""

import typing

import pytest

from cluster.config import ClusterConfig, RoutingConfig
from deployments.routing.affinity.router import DocumentAffinityRouter
from deployments.routing.prefix_cache import TokenPrefixCacheAffinityRouter
from deployments.routing.replica_routers import REPLICA_ROUTERS, request_router_config

PROFILE = {
    "device": "cpu",
    "models": {"m": {"path": "/nonexistent", "native_context": 4096}},
    "pools": [{"name": "p", "model": "m", "band": [0, 4096],
               "engine": {"max_model_len": 4096, "max_num_seqs": 6}}],
}


def pool_with(**routing):
    raw = {**PROFILE, "pools": [{**PROFILE["pools"][0], "routing": routing}]}
    return ClusterConfig.model_validate(raw).pools[0]


def test_every_configurable_policy_is_registered():
    policies = typing.get_args(RoutingConfig.model_fields["policy"].annotation)
    assert set(policies) == set(REPLICA_ROUTERS)


@pytest.mark.parametrize("policy, router", [("affinity", DocumentAffinityRouter),
                                            ("prefix_cache", TokenPrefixCacheAffinityRouter)])
def test_routers_are_named_by_class(policy, router):
    config = request_router_config(pool_with(policy=policy))
    assert config["request_router_class"] is router


def test_affinity_takes_its_bound_from_the_pool():
    config = request_router_config(pool_with(policy="affinity", load_factor=1.5))
    assert config["request_router_kwargs"] == {"load_factor": 1.5, "min_load": 6, "placement": "load"}


def test_affinity_placement_comes_from_the_pool():
    config = request_router_config(pool_with(policy="affinity", placement="ring"))
    assert config["request_router_kwargs"]["placement"] == "ring"


def test_power_of_two_keeps_serves_default():
    assert request_router_config(pool_with(policy="power_of_two")) is None


def test_affinity_gets_the_replica_capacity_only_with_a_tier():
    config = request_router_config(pool_with(policy="affinity"), capacity_tokens=3_000_000)
    assert config["request_router_kwargs"]["capacity_tokens"] == 3_000_000
    assert "capacity_tokens" not in request_router_config(pool_with(policy="affinity"))["request_router_kwargs"]
