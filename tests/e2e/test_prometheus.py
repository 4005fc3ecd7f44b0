"""monitoring/ against a real Prometheus scraping the real cluster.

Every PromQL expression of every dashboard panel, dashboard variable and rule
must be accepted by Prometheus and return data once the cluster has served a
little traffic: that catches typos, wrong label names and metrics that do not
exist (or exist under another name, e.g. without Ray's `_total`).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from benchmarks.common.ports import free_loopback_port
from tests.monitoring import promql
from tests.monitoring.vllm_metrics import TIER_SERIES

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
IL3 = "internlm3-8b-instruct"

# Metrics that exist only after an event a healthy demo cluster never has.
# vLLM's Ray stat logger skips inc(0), so the counter appears with the first
# preemption (KV cache exhausted); the name is checked against vLLM's source.
EVENT_ONLY_METRICS = {"ray_vllm_num_preemptions_total": "vllm:num_preemptions"}

# The KV tier's series (issue 11) exist only on pools with a tier, and the CPU
# demo has none (vLLM's CPU backend cannot run it): their names are checked
# against vLLM's metric code in tests/monitoring/test_kv_tier_metrics.py, the
# expressions are still validated here.
TIER_ONLY_METRICS = set(TIER_SERIES) | {
    rule["record"] for rule in promql.rules() if rule.get("record", "").startswith("longctx_pool:vllm_kv_tier_")}
NO_DATA_HERE = EVENT_ONLY_METRICS.keys() | TIER_ONLY_METRICS

# Alert operands that are empty in a healthy cluster although every metric they
# read exists: the label filter selects the failure itself. Their metric names
# are still required to have data (checked for every expression below).
EMPTY_WHILE_HEALTHY = {
    "rule LongctxHighErrorRate": "no 5xx answers: the numerator selects status=~\"5..\"",
    "rule LongctxMetricsAbsent": "absent() and a namespace without targets are empty while the target is there",
}


def wait_until(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll predicate until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Prometheus:
    url: str
    started: float  # unix time, start of every range query

    def query_range(self, expr: str) -> dict:
        response = httpx.get(
            f"{self.url}/api/v1/query_range",
            params={"query": expr, "start": self.started, "end": time.time(), "step": "1s"},
            timeout=30,
        )
        return response.json()

    def query(self, expr: str) -> list:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30).json()
        assert body["status"] == "success", body
        return body["data"]["result"]


def render_config(metrics_url: str, directory: Path) -> Path:
    """The project's scrape config, pointed at the test cluster, scraping every second."""
    config = yaml.safe_load((promql.MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(promql.RULES / "*.yml")]
    (job,) = config["scrape_configs"]
    parts = urlsplit(metrics_url)
    job["metrics_path"] = parts.path
    job["static_configs"] = [{"targets": [parts.netloc]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(cluster, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package `prometheus`; `make test` installs it)")
    directory = tmp_path_factory.mktemp("prometheus")
    config = render_config(cluster.metrics_url, directory)
    url = f"http://127.0.0.1:{free_loopback_port()}"
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address={urlsplit(url).netloc}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    started = time.time()

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}: {(directory / 'prometheus.log').read_text()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, what="Prometheus /-/ready")
        server = Prometheus(url, started)
        wait_until(lambda: server.query('up{job="longctx"} == 1'), timeout=60, what="the cluster's scrape target up")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def traffic(prometheus, http):
    """A little of everything the dashboards show, incl. a 413 and a 404."""
    ok = [
        http.post("/v1/chat/completions", json={
            "model": IL25, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}),
        http.post("/v1/chat/completions", json={
            "model": IL3, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "stream": True}),
        # Past the short band: the long pool's engines report too.
        http.post("/v1/completions", json={"model": IL25, "prompt": [7] * 2500, "max_tokens": 4}),
    ]
    # The same prompt twice: the second one is a prefix-cache hit.
    ok += [http.post("/v1/completions", json={"model": IL3, "prompt": [9] * 200, "max_tokens": 4}) for _ in range(2)]
    document = http.post("/v1/documents", json={"text": "clause obliges party. " * 200})
    assert document.status_code == 201, document.text
    ok.append(http.post(f"/v1/documents/{document.json()['id']}/ask", json={"question": "Who?", "max_tokens": 4}))
    for response in ok:
        assert response.status_code == 200, response.text
    too_long = http.post("/v1/completions", json={"model": IL25, "prompt": [7] * 20000, "max_tokens": 4})
    assert too_long.status_code == 413
    unknown = http.post("/v1/chat/completions", json={
        "model": "no-such-model", "messages": [{"role": "user", "content": "Hello"}]})
    assert unknown.status_code == 404
    # The rejections have reached Prometheus: the ingress's metrics are flowing.
    wait_until(
        lambda: prometheus.query('sum(ray_longctx_rejections_total{reason="over_length"}) >= 1')
        and prometheus.query('sum(ray_longctx_rejections_total{reason="unknown_model"}) >= 1'),
        timeout=120, what="the 413 and 404 in ray_longctx_rejections_total",
    )


def _vllm_declares(metric: str) -> bool:
    loggers = Path(importlib.util.find_spec("vllm").origin).parent / "v1" / "metrics" / "loggers.py"
    return f'name="{metric}"' in loggers.read_text()


def _expressions() -> tuple[list[promql.Expression], list[promql.Expression]]:
    """(must return data, must only be valid)."""
    with_data = list(promql.dashboard_expressions())
    valid_only = []
    for rule in promql.rules():
        name = f"rule {rule.get('alert') or rule['record']}"
        if "alert" not in rule:
            with_data.append(promql.Expression(name, rule["expr"].strip()))
            continue
        # An alert's condition is empty while all is well: it must be valid, and
        # its operands (threshold comparisons and and/or removed) must have data.
        valid_only.append(promql.Expression(name, rule["expr"].strip()))
        operands = [promql.Expression(f"{name} operand", op) for op in promql.without_thresholds(rule["expr"])]
        (valid_only if name in EMPTY_WHILE_HEALTHY else with_data).extend(operands)
    return with_data, valid_only


def test_event_only_metrics_are_real_vllm_metrics():
    for exported, declared in EVENT_ONLY_METRICS.items():
        assert _vllm_declares(declared), f"{declared} ({exported}) is not declared by this vLLM"


def test_every_expression_is_valid_and_returns_data(prometheus, traffic):
    with_data, valid_only = _expressions()
    names = sorted({name for e in with_data + valid_only for name in promql.metric_names(e.expr)})
    # Empty until an event, or without a KV tier: they need only be valid.
    no_data_here = [e for e in with_data if promql.metric_names(e.expr) & NO_DATA_HERE]
    for e in valid_only + no_data_here:
        _has_data(prometheus, e.where, e.expr)  # asserts the query API accepts it

    def missing() -> dict[str, str]:
        """What still has no data; an invalid expression fails at once."""
        absent = {}
        for name in names:
            if name not in NO_DATA_HERE and not _has_data(prometheus, name, name):
                absent[name] = "metric has no series"
        for e in with_data:
            if e in no_data_here:
                continue
            if not _has_data(prometheus, e.where, e.expr):
                absent[e.where] = e.expr
        return absent

    # Ray reports metrics every few seconds and exports a gauge only while it
    # is being set: poll until everything has arrived, or fail with the rest.
    deadline = time.monotonic() + 180
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not absent, "no data for:\n" + "\n".join(f"  {k}: {v}" for k, v in absent.items())


def _has_data(prometheus: Prometheus, where: str, expr: str) -> bool:
    body = prometheus.query_range(expr)
    assert body["status"] == "success", f"{where}: Prometheus rejects {expr!r}: {body.get('error')}"
    return bool(body["data"]["result"])


def test_alerts_are_loaded_and_quiet(prometheus, traffic):
    body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=30).json()
    assert body["status"] == "success"
    loaded = {rule["name"]: rule for group in body["data"]["groups"] for rule in group["rules"]}
    for alert in promql.alerts():
        rule = loaded[alert["alert"]]
        assert rule["health"] == "ok", f"{alert['alert']}: {rule.get('lastError')}"
    # A healthy cluster after a handful of requests: nothing is firing.
    firing = [a for a in httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=30).json()["data"]["alerts"]
              if a["state"] == "firing"]
    assert firing == []
