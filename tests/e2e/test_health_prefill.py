"""Health during long prefills: Serve's health checks of a pool keep passing
while its engine is busy prefilling, so no replica is restarted and
``/v1/pools`` keeps counting it.

The session cluster checks il25-long every second (tests/e2e/conftest.py)
with the planner's timeout (cluster/planner/ttft.py), so many checks fall
inside the prefills below. Prompts are random ids with new seeds: no cache hit
shortens them.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from cluster.planner.ttft import health_check_settings
from tests.e2e.helpers import engine_requests_in_progress, wait_until
from tests.support.rope.compare import random_prompt

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
LONG = "il25-long"


def _replica_actors(deployment: str) -> set[str]:
    """Names of the deployment's live replica actors (a restart brings a new name)."""
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"#{deployment}#" in a["name"]}


def _healthy(http) -> int:
    rows = http.get("/v1/pools").json()["data"]
    return next(row["healthy_replicas"] for row in rows if row["name"] == LONG)


def test_no_replica_restart_during_long_prefills(cluster, http):
    pool = cluster.config.pool(LONG)
    period, timeout = health_check_settings(cluster.config, pool)
    assert period == 1 and timeout >= 30, (period, timeout)
    deployment = f"pool-{LONG}"
    before = _replica_actors(deployment)
    assert len(before) == pool.replicas.min

    # The pool's whole admission limit of ~10k-token prefills (two at a time
    # in the engine, two waiting behind them), twice over.
    results: list[int] = []

    def prefill(client_index: int) -> None:
        with httpx.Client(base_url=cluster.base_url, timeout=600) as client:
            for seed in (1700 + client_index, 1750 + client_index):
                body = {"model": IL25, "prompt": random_prompt(10000, seed=seed), "max_tokens": 1, "temperature": 0}
                results.append(client.post("/v1/completions", json=body).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=prefill, args=(i,)) for i in range(pool.max_in_flight)]
    for thread in threads:
        thread.start()
    healthy_seen = []
    while any(t.is_alive() for t in threads):
        healthy_seen.append(_healthy(http))
        time.sleep(0.2)  # sampling the pool view while the prefills run
    for thread in threads:
        thread.join()
    busy_s = time.monotonic() - started

    assert results == [200] * 2 * pool.max_in_flight
    assert busy_s >= 5 * period, f"prefills of {busy_s:.1f} s span too few health checks"
    print(f"{len(results)} prefills of 10,000 tokens kept {LONG} busy for {busy_s:.1f} s "
          f"({busy_s / period:.0f} health-check periods); healthy replicas seen: {sorted(set(healthy_seen))}")
    assert healthy_seen and min(healthy_seen) == pool.replicas.min, healthy_seen
    wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) == 0, 120, "the engines to fall idle")
    assert _replica_actors(deployment) == before, "a replica was restarted during the prefills"
    from ray import serve

    status = serve.status().applications
    deployments = {name: d for app in status.values() for name, d in app.deployments.items()}
    assert deployments[deployment].status == "HEALTHY"
    assert deployments[deployment].replica_states == {"RUNNING": pool.replicas.min}
