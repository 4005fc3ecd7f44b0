"""A pool's KV tier reaches vLLM through Ray Serve LLM's engine_kwargs, or is refused at build time.

The LLMConfig is built here on CPU from a GPU profile (nothing is served):
vLLM's CPU backend cannot run KV offloading, so no engine test exists for it.
"""

import pytest

from cluster.config import KVTierConfig, load_config, profile_path
from deployments.engines import llm_config_for_pool
from deployments.kv_tier import KVTierUnsupported, check_supported, installed_engine_args

OFFLOAD_ARGS = {"kv_offloading_size", "kv_offloading_backend", "kv_transfer_config"}


def h200_with_tier(**tier):
    raw = load_config(profile_path("h200-141g"), env={}).model_dump(mode="json")
    raw["pools"][0]["kv_tier"] = {"size_gib": 96, **tier}
    return load_config(raw, env={})


def test_tier_becomes_engine_kwargs_of_the_pool():
    cluster = h200_with_tier(options={"block_size": 256})
    pool = cluster.pools[0]
    kwargs = llm_config_for_pool(cluster, pool).engine_kwargs
    assert kwargs["kv_offloading_backend"] == "native"
    assert kwargs["kv_offloading_size"] == 96.0
    assert kwargs["kv_transfer_config"]["kv_connector_extra_config"] == {"block_size": 256}
    assert kwargs["kv_transfer_config"]["kv_connector"] == "OffloadingConnector"
    # Prefix caching stays on: GPU-resident documents are still hits.
    assert kwargs["enable_prefix_caching"] is True


def test_pools_without_a_tier_get_no_offloading_arguments():
    cluster = h200_with_tier()
    for pool in cluster.pools[1:]:
        assert not OFFLOAD_ARGS & set(llm_config_for_pool(cluster, pool).engine_kwargs)


def test_cpu_demo_engine_kwargs_are_unchanged(demo_models):
    cluster = load_config(profile_path("cpu-demo"), env={})
    for pool in cluster.pools:
        assert not OFFLOAD_ARGS & set(llm_config_for_pool(cluster, pool).engine_kwargs)


def test_installed_vllm_has_the_offloading_arguments():
    assert OFFLOAD_ARGS <= installed_engine_args()


def test_vllm_without_offloading_is_refused():
    with pytest.raises(KVTierUnsupported, match="kv_offloading_size"):
        check_supported("p", KVTierConfig(size_gib=8), engine_args={"model", "kv_transfer_config"})


def test_lmcache_without_the_package_is_refused():
    tier = KVTierConfig(backend="lmcache", size_gib=8)
    with pytest.raises(KVTierUnsupported, match="lmcache package"):
        check_supported("p", tier, engine_args=OFFLOAD_ARGS, find_spec=lambda name: None)
    check_supported("p", tier, engine_args=OFFLOAD_ARGS, find_spec=lambda name: object())


def test_lmcache_pool_build_fails_where_lmcache_is_missing():
    """The CPU test environment has no lmcache: the app build says so."""
    pytest.importorskip("vllm")
    import importlib.util
    if importlib.util.find_spec("lmcache") is not None:
        pytest.skip("lmcache is installed here")
    cluster = h200_with_tier(backend="lmcache")
    with pytest.raises(KVTierUnsupported, match="lmcache"):
        llm_config_for_pool(cluster, cluster.pools[0])


@pytest.mark.parametrize("options", [{}, {"block_size": 256}])
def test_ray_serve_llm_accepts_the_tier_at_replica_start(options):
    """Ray Serve LLM checks kv_transfer_config when a replica starts its engine
    (LLMConfig.setup_engine_backend): it refuses one without kv_connector."""
    cluster = h200_with_tier(options=options)
    llm_config_for_pool(cluster, cluster.pools[0]).setup_engine_backend()


def test_vllm_derives_its_offloading_connector_from_the_arguments(demo_models):
    """vLLM's own engine config (built on CPU; only the workers would refuse
    to offload) merges our options with the size it derives."""
    from vllm.engine.arg_utils import EngineArgs

    kwargs = KVTierConfig(size_gib=0.25, options={"block_size": 64}).engine_kwargs()
    args = EngineArgs(model=str(demo_models / "tiny-internlm2_5-chat-1m"), trust_remote_code=True,
                      max_model_len=2048, dtype="float32", enforce_eager=True, **kwargs)
    transfer = args.create_engine_config().kv_transfer_config
    assert transfer.kv_connector == "OffloadingConnector" and transfer.kv_role == "kv_both"
    assert transfer.kv_connector_extra_config == {"block_size": 64, "cpu_bytes_to_use": 0.25 * 2**30}


def test_affinity_router_is_told_the_replica_capacity_with_gpu_kv_and_tier():
    from cluster.planner import plan_pool

    cluster = h200_with_tier()
    pool = cluster.pools[0]
    plan = plan_pool(cluster, pool)
    kwargs = llm_config_for_pool(cluster, pool).deployment_config["request_router_config"]["request_router_kwargs"]
    assert kwargs["capacity_tokens"] == plan.max_tokens + plan.kv_tier.tier_tokens
    other = llm_config_for_pool(cluster, cluster.pools[1]).deployment_config["request_router_config"]
    assert "capacity_tokens" not in other["request_router_kwargs"]
