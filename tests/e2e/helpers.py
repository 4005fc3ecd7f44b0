"""Helpers of the e2e tests: reading the cluster's metrics, waiting on conditions."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families


def engine_requests_in_progress(metrics_url: str) -> float:
    """Running + waiting requests summed over every vLLM engine (ray_vllm_* gauges)."""
    total = 0.0
    text = httpx.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name.endswith(("num_requests_running", "num_requests_waiting")) and "vllm" in family.name:
            total += sum(sample.value for sample in family.samples)
    return total


def engine_aborts(metrics_url: str) -> float:
    """Requests vLLM finished as aborted (vllm:request_success, finished_reason=abort)."""
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        if "vllm" in family.name and "request_success" in family.name:
            total += sum(s.value for s in family.samples
                         if s.labels.get("finished_reason") == "abort" and not s.name.endswith("_created"))
    return total


def wait_until(predicate, timeout_s: float, what: str):
    """Poll a readiness condition (bounded); no fixed sleeps as synchronisation."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def prefix_cache_hits(metrics_url: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        if "vllm" in family.name and "prefix_cache_hits" in family.name:
            total += sum(s.value for s in family.samples if not s.name.endswith("_created"))
    return total
