"""Every shipped profile and the benchmarks' own pass the planner; the issue targets' profiles keep their promises."""

from pathlib import Path

import pytest

from cluster.cli import main
from cluster.config import load_config, profile_path
from cluster.planner import ACCELERATOR_MEMORY_GIB, format_report, plan_cluster

REPO = Path(__file__).resolve().parents[3]
PROFILES = sorted(p.stem for p in (REPO / "deployments").glob("*.yaml"))
# The benchmarks' own profiles (the GPU ones run only on the GPU test machine,
# so this is where a config change that breaks them shows first).
# gpu-correctness-h200 is left out: its 4-layer checkpoint is planned from
# its config.json, written on the GPU machine; without it the planner takes
# the 32-layer architecture, which does not fit that profile's budgets.
BENCHMARK_PROFILES = sorted(str(p.relative_to(REPO)) for p in (REPO / "benchmarks" / "profiles").glob("*.yaml")
                            if p.stem != "gpu-correctness-h200")


@pytest.mark.parametrize("profile", PROFILES + BENCHMARK_PROFILES)
def test_every_profile_passes_the_planner(profile, profile_env, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["plan", profile]) == 0
    out = capsys.readouterr().out
    cluster = load_config(profile_path(profile))
    for pool in cluster.pools:
        assert pool.name in out
    assert "Kubernetes worker groups" in out
    plans = plan_cluster(cluster)
    assert all(p.fits and not p.problems for p in plans), format_report(plans)


def test_profiles_cover_the_issue_targets():
    assert {"cpu-demo", "a100-80g", "h100-80g", "h200-141g"} <= set(PROFILES)


@pytest.mark.parametrize("profile", ["a100-80g", "h100-80g", "h200-141g"])
def test_gpu_profiles_serve_a_million_tokens_on_known_gpus(profile, profile_env):
    cluster = load_config(profile_path(profile))
    assert {p.accelerator_type for p in cluster.pools} <= set(ACCELERATOR_MEMORY_GIB)
    longest = max(plan_cluster(cluster), key=lambda p: p.max_model_len)
    assert longest.max_model_len == 1048576 and longest.fits


def test_h200x4_holds_a_million_token_request_and_a_short_pool(profile_env, capsys):
    cluster = load_config(profile_path("h200x4-1m"))
    plans = {p.pool: p for p in plan_cluster(cluster)}
    long_, short = plans["il25-long"], plans["il25-short"]
    assert long_.tensor_parallel_size == 4 and long_.max_model_len == 1048576
    # 8 KV heads over 4 ranks: 2 per GPU, 32 KiB per token per GPU, nothing replicated.
    assert long_.kv_heads_per_device == 2 and not long_.kv_heads_replicated
    assert long_.kv_bytes_per_token_device == 32 * 1024
    # 0.55 of 140.4 GiB per rank: one 1M request twice over (prefix cache for a follow-up).
    assert 2 * 1048576 <= long_.max_tokens <= 2.5 * 1048576
    assert long_.fits and not long_.tight and not long_.problems
    # The short pool holds a whole native-window request on its 0.40 share.
    assert short.fits and short.max_tokens >= 262144
    # The shares of one GPU sum to at most 1 with one short replica per GPU,
    # and the long pool's share keeps two of its ranks off one GPU.
    long_pool, short_pool = cluster.pool("il25-long"), cluster.pool("il25-short")
    long_share, short_share = long_pool.worker_resources["GPU"], short_pool.worker_resources["GPU"]
    assert long_share > 0.5 and long_share + short_share <= 1
    assert 2 * short_share + long_share > 1
    assert short_pool.replicas.max <= 4
    assert cluster.engine_env["NCCL_NVLS_ENABLE"] == "0"
    assert cluster.engine_env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
    assert all(p.accelerator_type is None for p in cluster.pools) and cluster.gpu_memory_gib == 140.4
    assert main(["plan", "h200x4-1m"]) == 0
    out = capsys.readouterr().out
    assert "2.33M" in out and "4 x gpu per pod" in out


def test_h200x4_long_pool_gets_the_model_max_length_override(profile_env):
    from deployments.engines import rope_engine_kwargs

    cluster = load_config(profile_path("h200x4-1m"))
    kwargs = rope_engine_kwargs(cluster, cluster.pool("il25-long"))
    # Past vLLM's derived 655,360 (native x factor): model_max_length lets it start.
    assert kwargs["hf_overrides"] == {"dynamic_ntk_seq_len": 1048576, "model_max_length": 1048576}
    assert rope_engine_kwargs(cluster, cluster.pool("il25-short")) == {}
