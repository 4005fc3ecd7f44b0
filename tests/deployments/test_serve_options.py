"""Serve options of the pools and the ingress: replica bounds, drain timeouts, and the ingress's view of them."""

from __future__ import annotations

import pytest

from cluster.config import ReplicaConfig, load_config, profile_path
from deployments.engines import llm_config_for_pool
from deployments.ingress.service import Ingress
from deployments.routing.admission import PoolFull
from deployments.serve_options import (
    ingress_serve_options,
    pool_replicas_from_user_config,
    pool_serve_options,
    without_serve_options,
)


def demo(*overrides: str):
    return load_config(profile_path("cpu-demo"), list(overrides), env={})


def test_graceful_shutdown_follows_the_request_timeout_unless_set():
    cluster = demo("ingress.request_timeout_s=600", "pools.il25-long.request_timeout_s=1800",
                   "pools.il3-long.graceful_shutdown_timeout_s=2400")
    assert cluster.graceful_shutdown_timeout_s("il25-short") == 600  # the ingress's timeout
    assert cluster.graceful_shutdown_timeout_s("il25-long") == 1800  # the pool's own timeout
    assert cluster.graceful_shutdown_timeout_s("il3-long") == 2400  # set outright
    assert pool_serve_options(cluster, cluster.pool("il25-long"))["graceful_shutdown_timeout_s"] == 1800
    # The ingress relays every pool's answers: it waits for the slowest.
    assert ingress_serve_options(cluster)["graceful_shutdown_timeout_s"] == 2400


def test_graceful_shutdown_must_be_positive():
    with pytest.raises(ValueError, match="graceful_shutdown_timeout_s"):
        demo("pools.il3-long.graceful_shutdown_timeout_s=0")


def test_pool_options_are_what_the_engine_deployment_gets():
    cluster = demo("pools.il25-short.replicas.max=3", "pools.il25-short.replicas.initial=3")
    pool = cluster.pool("il25-short")
    options = pool_serve_options(cluster, pool)
    assert options["autoscaling_config"] == {
        "min_replicas": 2, "max_replicas": 3, "initial_replicas": 3, "target_ongoing_requests": 4.0}
    deployment_config = llm_config_for_pool(cluster, pool).deployment_config
    for key, value in options.items():
        assert deployment_config[key] == value


def test_user_config_carries_every_pools_bounds_back():
    cluster = demo("pools.il3-short.replicas.max=4")
    bounds = pool_replicas_from_user_config(ingress_serve_options(cluster)["user_config"])
    assert bounds == {p.name: p.replicas for p in cluster.pools}
    assert pool_replicas_from_user_config(None) == {}
    with pytest.raises(ValueError, match="exceeds"):
        pool_replicas_from_user_config({"pool_replicas": {"il3-short": {"min": 3, "max": 2}}})


def test_args_without_serve_options_still_load():
    import yaml

    raw = yaml.safe_load(profile_path("h100-80g").read_text())
    stripped = without_serve_options(raw)
    assert all("replicas" not in p for p in stripped["pools"]) and "replicas" in raw["pools"][0]
    cluster = load_config(stripped, env={})
    assert all(p.replicas == ReplicaConfig() for p in cluster.pools)


@pytest.fixture
def ingress(demo_models, tmp_path):
    config = demo(f"documents.store.data_dir={tmp_path}")
    return Ingress(config.model_dump(mode="json"), pool_handles={})


def admitted(admission, pool: str) -> int:
    """How many requests the admission controller lets in at once (all released again)."""
    tickets = []
    try:
        while len(tickets) < 10_000:
            tickets.append(admission.acquire(pool))
    except PoolFull:
        pass
    for ticket in tickets:
        ticket.release()
    return len(tickets)


def test_a_rescaled_pool_moves_the_ingress_admission_limit_and_pool_view(ingress):
    pool = ingress.cluster.pool("il3-short")
    assert admitted(ingress.admission, "il3-short") == 2 * 1 * 8  # 2 x replicas.max x max_num_seqs
    ingress.apply_pool_replicas({"il3-short": ReplicaConfig(min=1, max=3)})
    assert pool.replicas.max == 3 and ingress.cluster.pool("il3-short") is pool
    assert admitted(ingress.admission, "il3-short") == 2 * 3 * 8
    (row,) = [r for r in ingress.pools()["data"] if r["name"] == "il3-short"]
    assert row["replicas"]["max"] == 3
    # An explicit admission.max_in_flight stays what it says.
    ingress.apply_pool_replicas({"il25-long": ReplicaConfig(min=1, max=4)})
    assert admitted(ingress.admission, "il25-long") == 4
