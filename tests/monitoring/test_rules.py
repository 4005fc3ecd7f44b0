"""The chart's rules and dashboards without a cluster: promtool on the rules and config, dashboard structure."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import pytest
import yaml

from tests.monitoring import promql

RULE_FILES = sorted(promql.RULES.glob("*.yml"))
RULE_TESTS = sorted(promql.RULE_TESTS.glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; `make test` installs it)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_rule_files_exist():
    assert RULE_FILES and RULE_TESTS


def test_promtool_check_rules(promtool):
    result = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config(promtool):
    # Also resolves rule_files relative to the config: a moved rules dir fails here.
    result = _run(promtool, "check", "config", str(promql.MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests(promtool):
    result = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_clears_in_the_unit_tests():
    fired, cleared = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            checks = sorted(case.get("alert_rule_test", []), key=lambda c: _minutes(c["eval_time"]))
            firing_at = {}
            for check in checks:
                name = check["alertname"]
                if check.get("exp_alerts"):
                    fired.add(name)
                    firing_at.setdefault(name, _minutes(check["eval_time"]))
                elif name in firing_at:
                    cleared.add(name)  # an empty expectation after it fired
    names = {alert["alert"] for alert in promql.alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - cleared == set(), "alerts never shown clearing after firing"


def _minutes(duration: str) -> float:
    value, unit = float(duration[:-1]), duration[-1]
    return value * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def test_every_alert_has_severity_and_runbook():
    # The runbook itself is docs/operations.md's (tests/monitoring/test_runbooks.py).
    required = {"summary", "description", "runbook_url"}
    for alert in promql.alerts():
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert required <= alert["annotations"].keys(), alert["alert"]
        assert len(alert["annotations"]["description"].split()) >= 12, f"{alert['alert']}: description too thin"


def test_rules_select_the_scrape_jobs_name():
    # The PodMonitor relabels job to this name (tests/helm/test_monitoring.py checks it).
    config = yaml.safe_load((promql.MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    selected = {name for rule in promql.rules() for name in re.findall(r'\bjob="([^"]+)"', rule["expr"])}
    assert selected == jobs == {"longctx"}


def test_a_vanished_target_is_alerted():
    # up == 0 needs a target; a deleted pod has none.
    exprs = {alert["alert"]: alert["expr"] for alert in promql.alerts()}
    assert 'absent(up{job="longctx"})' in exprs["LongctxMetricsAbsent"]
    assert "LongctxMetricsDown" in exprs


def test_issue_alerts_are_all_there():
    names = {alert["alert"] for alert in promql.alerts()}
    assert {
        "LongctxPoolNoHealthyReplica",  # no healthy replica in a pool
        "LongctxTTFTHigh",  # TTFT p95 over a per-band threshold
        "LongctxKVCacheSaturated",
        "LongctxEngineQueueBuildup",
        "LongctxServeQueueBuildup",
        "LongctxHighErrorRate",
        "LongctxOverLengthSpike",  # spike in 413s
    } <= names


def test_ttft_objectives_cover_every_profile_pool():
    from cluster.config import load_config, profile_path

    objectives = {
        rule["labels"]["pool"] for rule in promql.rules()
        if rule.get("record") == "longctx_pool:ttft_p95_objective_seconds"
    }
    for profile in ("a100-80g", "h100-80g", "h200-141g"):
        pools = {pool.name for pool in load_config(profile_path(profile), []).pools}
        assert pools <= objectives, f"{profile}: pools without a TTFT objective fall back to 60 s"


# --- dashboards -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(promql.dashboards()))
def test_dashboard_model(name):
    board = promql.dashboards()[name]
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] == "row":  # a header: no query of its own
            assert panel["gridPos"]["w"] == 24 and panel["gridPos"]["x"] == 0, panel["title"]
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no targets"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty expr"
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"], f"{panel['title']}: no description (docs/operations.md's Dashboards section relies on it)"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("name", sorted(promql.dashboards()))
def test_every_panel_filters_on_namespace_and_cluster(name):
    board = promql.dashboards()[name]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for var, label in (("namespace", "namespace"), ("cluster", "ray_io_cluster")):
        variable = variables[var]
        assert label in variable["definition"], var
        # Local Prometheus (no such label): "All" must match a missing label, and is the default.
        assert variable["includeAll"] and variable["allValue"] == ".*", var
        assert variable["current"]["value"] == ["$__all"], var
    scope = ('namespace=~"$namespace"', 'ray_io_cluster=~"$cluster"')
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            selectors = re.findall(r"(?<![\w:])(ray_\w+)(\{[^}]*\})?", target["expr"])
            assert selectors, f"{panel['title']}: reads no ray_* series"
            for metric, matchers in selectors:
                assert all(m in matchers for m in scope), f"{panel['title']}: {metric} ignores $namespace/$cluster"


def test_scoping_adds_matchers_to_every_selector():
    grafana = importlib.import_module("monitoring.grafana")
    assert grafana.scoped('sum(rate(ray_a_total[5m])) / sum(ray_b{x="1"}) or vector(0)') == (
        'sum(rate(ray_a_total{namespace=~"$namespace", ray_io_cluster=~"$cluster"}[5m])) / '
        'sum(ray_b{x="1", namespace=~"$namespace", ray_io_cluster=~"$cluster"}) or vector(0)')
    assert grafana.scoped("longctx:replica_pool") == "longctx:replica_pool"


def test_pool_dashboard_filters_by_pool():
    board = promql.dashboards()["longctx-pool.json"]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "pool")
    assert variable["includeAll"] and variable["allValue"] == ".+"
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert "$pool" in target["expr"], f"{panel['title']} ignores the pool variable"


def test_overview_and_long_context_panels():
    titles = {name: {p["title"] for p in board["panels"]} for name, board in promql.dashboards().items()}
    assert {"Pools", "Replicas up by deployment", "Request rate by model and status", "Errors by status",
            "Rejections by reason", "Routing mix by band"} <= titles["longctx-overview.json"]
    assert {"Time to first token", "Inter-token latency", "End-to-end request latency", "Prompt tokens/s",
            "Generation tokens/s", "Running and waiting requests", "KV cache usage",
            "Prefix cache hit rate", "KV tier", "KV tier hits and misses", "KV tier hit ratio",
            "KV tier bytes loaded and stored"} <= titles["longctx-pool.json"]
    assert {"Prompt length distribution", "TTFT p95 by band"} <= titles["longctx-long-context.json"]


def _dashboard_builder():
    return importlib.import_module("monitoring.build_dashboards")


def test_dashboards_match_their_generator():
    builder = _dashboard_builder()
    assert builder.DASHBOARDS == promql.DASHBOARDS
    assert builder.drift() == [], "run `make generate`"


def test_dashboard_drift_is_reported(tmp_path):
    builder = _dashboard_builder()
    for name, text in builder.render().items():
        (tmp_path / name).write_text(text)
    assert builder.drift(tmp_path) == []
    edited = next(iter(builder.render()))
    (tmp_path / edited).write_text("{}")
    (tmp_path / "by-hand.json").write_text("{}")
    assert builder.drift(tmp_path) == [edited, "by-hand.json (not built here)"]


# --- the helpers the e2e test relies on ------------------------------------


def test_without_thresholds_keeps_the_vector_operands():
    assert promql.without_thresholds("up == 0") == ["up"]
    assert promql.without_thresholds("sum by (a) (x{b=~\"5..\"}) / sum(y) > 0.05") == ['sum by (a) (x{b=~"5.."}) / sum(y)']
    assert promql.without_thresholds("(a / b) > 0.2\nand\nc > 10") == ["(a / b)", "c"]
    assert promql.without_thresholds("a\n > on (pool) group_left ()\n(t or on (pool) d * 60)") == [
        "a", "(t or on (pool) d * 60)"]


def test_metric_names():
    expr = 'rate(ray_vllm_x_bucket[5m]) * on (ReplicaId) group_left (pool) longctx:replica_pool or up{job="a"}'
    assert promql.metric_names(expr) == {"ray_vllm_x_bucket", "longctx:replica_pool", "up"}


def test_label_names_are_not_read_as_series():
    expr = ('sum by (namespace, ray_io_cluster) (rate(ray_a_total{ray_io_cluster=~".*"}[5m])) '
            '/ on (ray_io_cluster) group_left () ray_b')
    assert promql.metric_names(expr) == {"ray_a_total", "ray_b"}


def test_dashboard_variables_are_checked_with_grafana_values():
    variables = [e for e in promql.dashboard_expressions() if "/ variable " in e.where]
    assert variables and all("$" not in e.expr for e in variables)
