"""The chart's monitoring: dashboards and rules from helm/monitoring/, their only home."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from tests.helm.rendering import CHART, K8S_VERSION, helm, kinds, render, the

kubernetes_validate = pytest.importorskip("kubernetes_validate")


def test_the_charts_monitoring_files_become_rules_and_dashboards(rendered):
    dashboards = sorted(p.stem for p in (CHART / "monitoring" / "dashboards").glob("*.json"))
    assert dashboards, "helm/monitoring/dashboards is empty"
    for docs in rendered.values():
        names = sorted(d["metadata"]["name"].split("-dashboard-", 1)[1] for d in kinds(docs, "ConfigMap")
                       if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1")
        assert names == dashboards
    # ci/a100-80g.yaml forces the PrometheusRule on: every rule group of
    # helm/monitoring/rules is in it.
    groups = {g["name"] for g in the(rendered["a100-80g"], "PrometheusRule")["spec"]["groups"]}
    expected = {g["name"] for f in (CHART / "monitoring" / "rules").glob("*.yml")
                for g in yaml.safe_load(f.read_text())["groups"]}
    assert groups == expected
    # Without the CRDs (offline render: no API) "auto" renders no PodMonitor
    # or PrometheusRule; ci/a100-80g.yaml forces them on.
    assert kinds(rendered["default"], "PodMonitor") == []
    assert kinds(rendered["default"], "PrometheusRule") == []
    monitor = the(rendered["a100-80g"], "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.fixture
def chart_with_monitoring(tmp_path):
    copy_dir = tmp_path / "helm"
    shutil.copytree(CHART, copy_dir, ignore=shutil.ignore_patterns("tools", "ci"))
    dashboards = copy_dir / "monitoring" / "dashboards"
    rules = copy_dir / "monitoring" / "rules"
    # Only the files below, so the test does not depend on the repository's.
    shutil.rmtree(dashboards)
    shutil.rmtree(rules)
    dashboards.mkdir()
    rules.mkdir()
    (dashboards / "Pools Overview.json").write_text(json.dumps({"title": "Pools", "panels": []}))
    (dashboards / "kv.json").write_text('{"title": "KV", "templating": {"list": []}}')
    (rules / "latency.yml").write_text(
        "groups:\n- name: latency\n  rules:\n  - alert: TTFTHigh\n    expr: histogram_quantile(0.99, "
        "sum(rate(x_bucket[5m])) by (le)) > 30\n    annotations:\n      summary: 'p99 {{ $value }}s'\n")
    (rules / "kv.yml").write_text("groups:\n- name: kv\n  rules:\n  - record: a:b\n    expr: up\n")
    (rules / "tests").mkdir()
    (rules / "tests" / "latency_test.yml").write_text("rule_files: [../latency.yml]\n")
    return copy_dir


def test_monitoring_files_become_rules_and_dashboards(chart_with_monitoring):
    chart = helm.Chart.load(str(chart_with_monitoring))
    docs = render(chart, {"monitoring": {"prometheusRule": {"enabled": True}}})
    rule = the(docs, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["kv", "latency"]
    # Alert templates are Prometheus', not Helm's: they must survive verbatim.
    assert rule["spec"]["groups"][1]["rules"][0]["annotations"]["summary"] == "p99 {{ $value }}s"
    dashboards = [d for d in kinds(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert sorted(d["metadata"]["name"] for d in dashboards) == [
        "lc-longctx-cluster-dashboard-kv", "lc-longctx-cluster-dashboard-pools-overview"]
    pools = next(d for d in dashboards if d["metadata"]["name"].endswith("pools-overview"))
    assert json.loads(pools["data"]["Pools Overview.json"]) == {"title": "Pools", "panels": []}
    for doc in dashboards:
        clean = {k: v for k, v in doc.items() if k != "__template"}
        kubernetes_validate.validate(clean, K8S_VERSION, strict=True)
    # "auto" without the CRD API: no PrometheusRule even with rule files.
    assert kinds(render(chart, {}), "PrometheusRule") == []


def test_invalid_dashboard_json_fails_the_render(chart_with_monitoring):
    (chart_with_monitoring / "monitoring" / "dashboards" / "broken.json").write_text("{nope")
    chart = helm.Chart.load(str(chart_with_monitoring))
    with pytest.raises(helm.HelmError, match="broken.json"):
        chart.render({}, name="lc", namespace="llm")


def _rule_exprs(rule_object: dict) -> list[str]:
    return [rule["expr"] for group in rule_object["spec"]["groups"] for rule in group["rules"]]


def test_the_pod_monitor_labels_targets_as_the_rules_and_dashboards_select_them(rendered):
    docs = rendered["a100-80g"]
    endpoint = the(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    relabelings = endpoint["relabelings"]
    # prometheus-operator would name the job "<namespace>/<name>"; the rules
    # (and monitoring/prometheus.yml) select job="longctx".
    (job,) = [r for r in relabelings if r.get("targetLabel") == "job"]
    assert job == {"targetLabel": "job", "replacement": "longctx"}
    jobs = {name for expr in _rule_exprs(the(docs, "PrometheusRule")) for name in re.findall(r'job="([^"]+)"', expr)}
    assert jobs == {job["replacement"]}
    # KubeRay's ray.io/cluster pod label becomes the dashboards' cluster label.
    (cluster,) = [r for r in relabelings if r.get("targetLabel") == "ray_io_cluster"]
    assert cluster["sourceLabels"] == ["__meta_kubernetes_pod_label_ray_io_cluster"]
    for board in (CHART / "monitoring" / "dashboards").glob("*.json"):
        variables = {v["name"]: v for v in json.loads(board.read_text())["templating"]["list"]}
        assert variables["cluster"]["definition"].endswith(", ray_io_cluster)"), board.name
    # The PodMonitor selects the head and every worker pod of the release.
    selector = the(docs, "PodMonitor")["spec"]["selector"]["matchLabels"]
    cluster_spec = the(docs, "RayService")["spec"]["rayClusterConfig"]
    pods = [cluster_spec["headGroupSpec"]["template"]] + [g["template"] for g in cluster_spec["workerGroupSpecs"]]
    for pod in pods:
        assert selector.items() <= pod["metadata"]["labels"].items()
        ports = {p["name"]: p for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint["port"] in ports


def test_runbook_urls_get_the_base_url(chart):
    on = {"monitoring": {"prometheusRule": {"enabled": True}}}
    bare = the(render(chart, on), "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for g in bare["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert urls and all(url.startswith("docs/operations.md#") for url in urls)
    on["monitoring"]["prometheusRule"]["runbookBaseUrl"] = "https://git.example.com/ml/longctx/blob/v0.1.0/"
    linked = the(render(chart, on), "PrometheusRule")
    assert [r["annotations"]["runbook_url"] for g in linked["spec"]["groups"] for r in g["rules"] if "alert" in r] == [
        f"https://git.example.com/ml/longctx/blob/v0.1.0/{url}" for url in urls]
    # Alert templates stay Prometheus' own.
    assert any("{{ $labels.pool }}" in r["annotations"]["summary"]
               for g in linked["spec"]["groups"] for r in g["rules"] if "alert" in r)
    with pytest.raises(helm.HelmError, match="runbookBaseUrl"):
        render(chart, {"monitoring": {"prometheusRule": {"runbookBaseUrl": "git.example.com"}}})
