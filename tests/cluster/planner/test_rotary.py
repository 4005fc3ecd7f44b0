"""Rotary-table memory of long pools (cluster/planner/rotary.py), per rope_base mode."""

import pytest

from cluster.config import load_config, profile_path
from cluster.planner import plan_cluster
from cluster.planner.report import format_report


def plans_of(mode: str) -> dict:
    overrides = [f"pools.{p}.rope_base.mode={mode}" for p in ("il25-long", "il3-long")]
    overrides += [f"models.{m}.rotary_dim=128" for m in ("internlm2_5-7b-chat-1m", "internlm3-8b-instruct")]
    config = load_config(profile_path("h200-141g"), overrides, env={})
    return {plan.pool: plan for plan in plan_cluster(config)}


@pytest.mark.parametrize("mode", ["pool", "request", "bucket"])
def test_tables_are_small_and_the_same_in_every_mode(mode):
    plans = plans_of(mode)
    assert plans["il25-short"].rotary is None  # inside the native window: stock rotary
    rotary = plans["il25-long"].rotary
    assert rotary.mode == mode and rotary.rotary_dim == 128
    # The replaced design: one max_model_len x rotary_dim float32 cos/sin cache per base.
    assert rotary.cache_bytes_per_base == 1_048_576 * 128 * 4
    assert rotary.table_bytes < 1024**2 and rotary.table_bytes == plans_of("pool")["il25-long"].rotary.table_bytes


def test_caches_a_per_base_design_would_need():
    assert plans_of("pool")["il3-long"].rotary.bases == 1
    assert plans_of("request")["il3-long"].rotary.bases is None
    # InternLM3 past 32,768 to 196,608: bases from 1x to 32.7x the stock one,
    # 1.25x apart -> ceil(log(32.7) / log(1.25)) = 16 buckets.
    assert plans_of("bucket")["il3-long"].rotary.bases == 16


def test_the_report_shows_each_long_pool():
    report = format_report(list(plans_of("bucket").values()))
    assert "rope il25-long (bucket mode): rotary tables" in report
    assert "512 MiB each" in report and "one per bucket" in report
    assert "rope il25-short" not in report
