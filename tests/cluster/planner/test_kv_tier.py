"""The planner's KV tier: host RAM, documents held, reload vs prefill, warnings.

Planned for GPU profiles only: vLLM's CPU backend cannot run KV offloading
(the config refuses it on device cpu), so nothing here is served.
"""

import json

import pytest

from cluster.cli import main
from cluster.config import load_config, profile_path
from cluster.planner import GIB, format_report, plan_pool, worker_shapes


def h200(tier, pool="il25-short", **cluster):
    raw = load_config(profile_path("h200-141g"), env={}).model_dump(mode="json")
    next(p for p in raw["pools"] if p["name"] == pool)["kv_tier"] = tier
    raw.update(cluster)
    config = load_config(raw, env={})
    return config, config.pool(pool)


def test_tier_counts_documents_in_gpu_kv_and_in_host_ram():
    cluster, pool = h200({"size_gib": 256})
    plan = plan_pool(cluster, pool)
    tier = plan.kv_tier
    assert tier.tier_tokens == 256 * GIB // (128 * 1024)  # 128 KiB per token of InternLM2.5 bf16
    assert tier.gpu_kv_tokens == plan.max_tokens
    assert (tier.typical_doc_tokens, tier.max_doc_tokens) == (65536, 131072)
    assert tier.tier_docs_max == 16 and tier.gpu_docs_max == plan.max_tokens // 131072
    assert tier.pod_memory_gib == 257


def test_reload_is_bytes_over_the_host_link_and_beats_prefill_at_128k():
    cluster, pool = h200({"size_gib": 256, "host_to_gpu_gb_s": 25})
    tier = plan_pool(cluster, pool).kv_tier
    assert tier.reload_s_max == pytest.approx(131072 * 128 * 1024 / 25e9)
    assert tier.reload_s_max < 0.1 * tier.prefill_s_max
    slower = plan_pool(*h200({"size_gib": 256, "host_to_gpu_gb_s": 12.5})).kv_tier
    assert slower.reload_s_max == pytest.approx(2 * tier.reload_s_max)


def test_tensor_parallel_ranks_split_the_tier_and_reload_in_parallel():
    cluster, pool = h200({"size_gib": 384}, pool="il25-long")
    tier = plan_pool(cluster, pool).kv_tier
    assert tier.size_gib_per_rank == 192
    # The group's KV per token (128 KiB) over two links at once.
    assert tier.reload_s_max == pytest.approx(1048576 * 128 * 1024 / 2 / 25e9)


def test_tier_smaller_than_gpu_kv_is_called_pointless():
    tier = plan_pool(*h200({"size_gib": 32})).kv_tier
    assert any("smaller than the replica's GPU KV" in w for w in tier.warnings)


def test_tier_larger_than_the_node_is_flagged():
    tier = plan_pool(*h200({"size_gib": 1500}, node_memory_gib=1024)).kv_tier
    assert any("node_memory_gib" in w for w in tier.warnings)


def test_vllm026_power_of_two_pinning_is_reported():
    exact = plan_pool(*h200({"size_gib": 256})).kv_tier  # 32 layers x 8 GiB
    assert exact.pinned_gib_vllm026 == 256 and not any("powers of two" in w for w in exact.warnings)
    rounded = plan_pool(*h200({"size_gib": 300})).kv_tier
    assert rounded.pinned_gib_vllm026 == 512
    assert any("here 256" in w for w in rounded.warnings)


def test_shared_worker_group_is_flagged():
    tier = plan_pool(*h200({"size_gib": 256})).kv_tier
    assert any("shares its Kubernetes worker group" in w for w in tier.warnings)
    alone = plan_pool(*h200({"size_gib": 384}, pool="il25-long")).kv_tier
    assert not any("worker group" in w for w in alone.warnings)


def test_lmcache_tier_adds_nothing_to_the_pod():
    cluster, pool = h200({"backend": "lmcache", "size_gib": 512})
    tier = plan_pool(cluster, pool).kv_tier
    assert tier.pod_memory_gib == 0 and tier.pinned_gib_vllm026 is None
    assert all(s.kv_tier_memory_gib == 0 for s in worker_shapes(cluster))


def test_pools_without_a_tier_plan_none(demo_models):
    cluster = load_config(profile_path("cpu-demo"), env={})
    assert all(plan_pool(cluster, p).kv_tier is None for p in cluster.pools)
    assert "kv tier" not in format_report([plan_pool(cluster, p) for p in cluster.pools])


def test_plan_command_shows_the_tier_in_text_and_json(capsys):
    assert main(["plan", "h200-141g-kvtier"]) == 0
    text = capsys.readouterr().out
    assert "kv tier il25-long (native): 384 GiB host RAM per replica (192 GiB per rank)" in text
    assert "reload 2.7 s at 25 GB/s vs prefill" in text
    assert main(["plan", "h200-141g-kvtier", "--format", "json"]) == 0
    plans = {p["pool"]: p for p in json.loads(capsys.readouterr().out)}
    assert plans["il25-long"]["kv_tier"]["tier_docs_max"] == 3
    assert plans["il25-short"]["kv_tier"] is None
