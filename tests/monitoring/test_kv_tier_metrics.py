"""The KV tier's metrics (issue 11) at the code level: vLLM's names, our rules, the dashboard.

What cannot run on CPU: vLLM's CPU backend does not move KV through the
OffloadingConnector, so no engine here ever loads or stores tier bytes, and
the CPU demo runs without a tier (tests/e2e/test_prometheus.py exempts these
series from its "returns data" check). Instead, vLLM's own metric-building code
(RayPrometheusStatLogger, the logger Ray Serve LLM installs) is built for a
tier-on engine config and fed the stats objects the scheduler sends; a vLLM
upgrade that renames or drops a series the rules or the dashboard read fails
here. That the series reach Prometheus from a real tier is for the GPU run.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.monitoring import promql
from tests.monitoring.vllm_metrics import TIER_SERIES, ray_stat_logger, tier_engine_config

RULE_TEST = promql.RULE_TESTS / "longctx-kv-tier.test.yml"


@pytest.fixture(scope="module")
def tier_model(demo_models):
    from cluster.demo import TINY_INTERNLM3

    return demo_models / TINY_INTERNLM3.name


@pytest.fixture
def tier_logger(tier_model, monkeypatch):
    return ray_stat_logger(tier_engine_config(tier_model), monkeypatch)


def _read_names() -> set[str]:
    expressions = promql.dashboard_expressions() + promql.rule_expressions()
    return {name for e in expressions for name in promql.metric_names(e.expr) if name.startswith("ray_vllm_")}


def test_every_vllm_series_the_monitoring_reads_is_one_vllm_exports(tier_logger):
    """Dashboards and rules (tier or not) read only series this vLLM declares,
    under the name Ray's agent gives them, for an engine with the tier on."""
    _, exported = tier_logger
    read = _read_names()
    assert set(TIER_SERIES) <= read, "the tier's series are no longer read by any rule or panel"
    assert read - set(exported.exported()) == set()
    for series, declared in TIER_SERIES.items():
        assert exported.exported()[series] == declared


def test_tier_series_count_what_the_connector_reports_per_replica(tier_logger):
    """The scheduler's stats for one step: 100 prompt tokens looked up in the tier,
    60 found; the connector's worker copied 1000 bytes in and 3000 out."""
    from vllm.distributed.kv_transfer.kv_connector.v1.offloading.metrics import (
        OffloadingConnectorStats,
        _TransferMetricName,
    )
    from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

    logger, exported = tier_logger
    transfers = OffloadingConnectorStats()
    transfers.increase_counter(_TransferMetricName.LOAD_BYTES, 1000)
    transfers.increase_counter(_TransferMetricName.LOAD_TIME, 0.25)
    transfers.increase_counter(_TransferMetricName.STORE_BYTES, 3000)
    transfers.increase_counter(_TransferMetricName.STORE_TIME, 0.5)
    lookups = PrefixCacheStats()
    lookups.record(num_tokens=100, num_hits=60, preempted=False)
    # What the engine core sends the front end: the stats' plain data.
    logger.record(scheduler_stats=SchedulerStats(connector_prefix_cache_stats=lookups,
                                                 kv_connector_stats=transfers.data), iteration_stats=None)

    expected = {"vllm_external_prefix_cache_queries": 100, "vllm_external_prefix_cache_hits": 60,
                "vllm_kv_offload_load_bytes": 1000, "vllm_kv_offload_load_time": 0.25,
                "vllm_kv_offload_store_bytes": 3000, "vllm_kv_offload_store_time": 0.5}
    for name, value in expected.items():
        # ReplicaId is what the rules join on to find the pool; outside Serve it is "".
        assert "ReplicaId" in exported.declared[name].tag_keys, name
        (series,) = exported.recorded(name).items()
        tags, total = dict(series[0]), series[1]
        assert total == value, name
        assert tags["ReplicaId"] == "" and tags["engine"] == "0", name


def test_without_a_tier_there_are_no_tier_series(tier_model, monkeypatch):
    """The CPU demo's pools have no tier: no transfer series are declared, and the
    lookup counters never move, so tier panels show no data and rules return nothing."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

    config = EngineArgs(model=str(tier_model), trust_remote_code=True, max_model_len=2048, dtype="float32",
                        enforce_eager=True).create_engine_config()
    assert config.kv_transfer_config is None
    logger, exported = ray_stat_logger(config, monkeypatch)
    gpu_hits = PrefixCacheStats()
    gpu_hits.record(num_tokens=100, num_hits=60, preempted=False)
    logger.record(scheduler_stats=SchedulerStats(prefix_cache_stats=gpu_hits), iteration_stats=None)
    assert not [name for name in exported.declared if "kv_offload" in name]
    assert exported.recorded("vllm_external_prefix_cache_queries") == {}
    assert sum(exported.recorded("vllm_prefix_cache_hits").values()) == 60


# --- the dashboard's numbers equal the rules' ------------------------------

# Per KV tier panel and query: the value for the rule test's first case
# (monitoring/tests/longctx-kv-tier.test.yml), the same as its recording rules.
PANEL_VALUES = {
    ("KV tier hits and misses", "A"): 7.5,
    ("KV tier hits and misses", "B"): 7.5,
    ("KV tier hit ratio", "A"): 0.5,
    ("KV tier bytes loaded and stored", "A"): 1e9,
    ("KV tier bytes loaded and stored", "B"): 3e9,
    ("KV tier copy speed", "A"): 1e10,
    ("KV tier copy speed", "B"): 1e10,
}


def _tier_targets() -> dict[tuple[str, str], str]:
    board = promql.dashboards()["longctx-pool.json"]
    return {(panel["title"], target["refId"]): target["expr"]
            for panel in board["panels"] if panel["title"].startswith("KV tier")
            for target in panel.get("targets", [])}


def test_every_tier_panel_query_has_an_expected_value():
    assert set(_tier_targets()) == set(PANEL_VALUES)


def test_tier_panels_compute_what_the_rules_record(tmp_path):
    """promtool evaluates each panel query (Grafana's variables filled in: all
    pools, a 5 m rate window like the rules') on the rules' test input."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; `make test` installs it)")
    case = yaml.safe_load(RULE_TEST.read_text())["tests"][0]
    checks = []
    for (title, ref), expr in _tier_targets().items():
        # The rest as Grafana fills them for "All": pool, namespace, Ray cluster.
        expr = promql.substitute(expr.replace("$__rate_interval", "5m"))
        checks.append({"expr": f"round({expr}, 0.001)", "eval_time": "10m",
                       "exp_samples": [{"labels": '{pool="il25-long"}', "value": PANEL_VALUES[(title, ref)]}]})
    test = {"evaluation_interval": "1m",
            "tests": [{"interval": case["interval"], "input_series": case["input_series"], "promql_expr_test": checks}]}
    path = tmp_path / "kv-tier-panels.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
