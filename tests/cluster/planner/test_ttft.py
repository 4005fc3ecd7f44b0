"""The planner's cold-TTFT estimate, the start-up timeout warning and the
health-check settings derived from it."""

from __future__ import annotations

import pytest

from cluster.config import load_config, profile_path
from cluster.planner import format_table, plan_cluster
from cluster.planner.ttft import cold_ttft_s, health_check_settings, timeout_warnings
from deployments.engines import llm_config_for_pool


def _h200(band_max: int):
    # The measured setup: InternLM2.5-7B on one H200, prompt of band_max tokens.
    return load_config(profile_path("h200-1gpu"), [
        "pools.il25-long.accelerator_type=H200", f"pools.il25-long.band=[262145, {band_max}]",
        f"pools.il25-long.engine.max_model_len={max(band_max, 262145)}",
    ], env={})


@pytest.mark.parametrize("tokens, measured_s", [(458_751, 113.0), (262_145, None)])
def test_estimate_matches_the_h200_measurement(tokens, measured_s):
    cluster = _h200(tokens)
    estimate = cold_ttft_s(cluster, cluster.pool("il25-long"))
    if measured_s is not None:
        assert estimate == pytest.approx(measured_s, rel=0.05)
    else:
        # Quadratic in N: the 458,751-token prefill is over twice this one.
        assert 2 < cold_ttft_s(_h200(458_751), _h200(458_751).pool("il25-long")) / estimate < 4


def test_131k_estimate_is_near_its_measurement():
    cluster = load_config(profile_path("h200-141g"), env={})
    pool = cluster.pool("il25-short")  # band max 131,072 on one H200
    assert pool.max_tokens == 131_072 and pool.engine.tensor_parallel_size == 1
    assert cold_ttft_s(cluster, pool) == pytest.approx(11.0, rel=0.1)


def test_a100_million_token_pool_is_minutes_and_shown_in_the_plan():
    cluster = load_config(profile_path("a100-80g"), env={})
    estimate = cold_ttft_s(cluster, cluster.pool("il25-long"))
    assert 300 < estimate < 600  # LMDeploy measured 364 s on 4 x A100
    table = format_table(plan_cluster(cluster))
    assert "cold TTFT" in table.splitlines()[0]
    assert f"{estimate:.1f} s" in table


def test_cpu_and_unknown_gpus_have_no_estimate(demo_models):
    cpu = load_config(profile_path("cpu-demo"), env={})
    assert all(cold_ttft_s(cpu, p) is None for p in cpu.pools)
    assert timeout_warnings(cpu) == []
    assert "-" in format_table(plan_cluster(cpu)).splitlines()[2]


def test_warning_names_a_pool_whose_timeout_is_shorter_than_its_prefill():
    assert timeout_warnings(load_config(profile_path("a100-80g"), env={})) == []
    short = load_config(profile_path("a100-80g"), ["pools.il25-long.request_timeout_s=300"], env={})
    warnings = timeout_warnings(short)
    assert len(warnings) == 1 and "pool il25-long" in warnings[0] and "300 s" in warnings[0]


def test_health_checks_outlast_the_longest_prefill_of_each_pool():
    cluster = load_config(profile_path("a100-80g"), env={})
    for pool in cluster.pools:
        estimate = cold_ttft_s(cluster, pool)
        period, timeout = health_check_settings(cluster, pool)
        deployment = llm_config_for_pool(cluster, pool).deployment_config
        assert (deployment["health_check_period_s"], deployment["health_check_timeout_s"]) == (period, timeout)
        assert timeout >= 30 and period >= 10
        if estimate > 30:  # the long pools
            assert timeout > estimate and period > estimate / 3
    long_timeout = health_check_settings(cluster, cluster.pool("il25-long"))[1]
    assert long_timeout > 400


def test_configured_health_settings_win():
    cluster = load_config(profile_path("a100-80g"), ["pools.il25-long.health_check_timeout_s=900",
                                                      "pools.il25-long.health_check_period_s=20"], env={})
    assert health_check_settings(cluster, cluster.pool("il25-long")) == (20.0, 900.0)
