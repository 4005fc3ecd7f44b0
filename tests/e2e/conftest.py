"""One real cluster for the e2e package: Ray, Serve, vLLM CPU engines, the ingress.

Every e2e test shares it; starting it takes about a minute on two cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from benchmarks.common.ports import free_loopback_port
from cluster.config import ClusterConfig, load_config, profile_path
from tests.support import lanes


MAX_DOCUMENT_BYTES = 2_000_000
IL25_LONG_PROMPT_TOKENS = 9000  # within il25-long's band, several prefill chunks
LONG_POOL_HEARTBEAT_S = 0.1
LONG_POOL_CHUNK = 2048
# Ray exports its processes' metrics every 10 s by default; the tests that
# read vLLM's counters wait for an export (helpers.settled, the waits for
# idle engines), so the cluster exports every 2 s (Ray's floor is 1 s; a
# gauge lives two intervals without a refresh, and 2 s leaves a loaded
# machine room for a late export).
METRICS_EXPORT_S = 2
# KV per engine: many times what the tests keep cached (tests/support/lanes.py, kv_blocks).
KV_BLOCKS = lanes.kv_blocks(131_072)


def pytest_collection_modifyitems(config, items):
    """Tests that kill parts of the shared cluster run last among the e2e
    tests (not after the whole session, which would start a second cluster);
    before them the quiet_machine ones, by when `make test`'s other worker
    has only short tests left to pause (tests/support/lanes.py)."""
    here = Path(__file__).parent
    e2e = [item for item in items if here in Path(item.fspath).parents]
    if not e2e:
        return
    start = items.index(e2e[0])
    others = [item for item in items if item not in e2e]
    e2e.sort(key=lambda item: (item.get_closest_marker("disruptive") is not None,
                               item.get_closest_marker("quiet_machine") is not None))
    items[:] = others[:start] + e2e + others[start:]


@dataclass(frozen=True)
class RunningCluster:
    base_url: str
    config: ClusterConfig
    metrics_url: str

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def pools_of(self, model: str) -> list[str]:
        return [p.name for p in self.config.pools_of(model)]


@pytest.fixture(scope="package")
def cluster(demo_models, tmp_path_factory) -> RunningCluster:
    from cluster.cli import start_cluster
    from cluster.direct_ingress import skip_draining_without_balancer

    port = free_loopback_port()
    overrides = [
        f"ingress.port={port}",
        "ingress.host=127.0.0.1",
        f"documents.store.data_dir={tmp_path_factory.mktemp('documents')}",
        # Small enough that the tests can send a body over it.
        f"documents.store.limits.max_document_bytes={MAX_DOCUMENT_BYTES}",
        # Keep-alive (tests/e2e/test_keepalive.py): off everywhere, so the other
        # tests see today's behaviour, except a short heartbeat on il25-long.
        "ingress.stream_heartbeat_s=0",
        f"pools.il25-long.stream_heartbeat_s={LONG_POOL_HEARTBEAT_S}",
        # Prefill chunks of 2048 rather than the profile's 4096, so a ~9k-token
        # prompt spans five chunks and a hang-up after the first one shows
        # clearly how little of it the engine computes
        # (tests/e2e/test_cancel_prefill.py).
        f"pools.il25-long.engine.max_num_batched_tokens={LONG_POOL_CHUNK}",
        # Health checks of il25-long every second (the planner's timeout kept),
        # so many fall inside its prefills (tests/e2e/test_health_prefill.py).
        "pools.il25-long.health_check_period_s=1",
        # usage.prompt_tokens_details.cached_tokens on the long pools' answers (a
        # vLLM front-end argument): tests/e2e/test_rope_base.py and
        # test_cancel_prefill.py read each request's cache hits there rather
        # than waiting for Ray's metrics export.
        "pools.il3-long.engine.extra.enable_prompt_tokens_details=true",
        "pools.il25-long.engine.extra.enable_prompt_tokens_details=true",
        # Serve's direct ingress: the other tests use Serve's proxy on `port`,
        # tests/e2e/test_direct_ingress.py the ingress replica's own port.
        "ingress.direct_ingress=true",
    ]
    skip_draining_without_balancer()
    profile = str(profile_path("cpu-demo"))
    overrides += [f"pools.{pool.name}.engine.extra.num_gpu_blocks_override={KV_BLOCKS}"
                  for pool in load_config(profile, []).pools]
    config = load_config(profile, overrides)
    metrics_port = free_loopback_port()
    with pytest.MonkeyPatch.context() as env:
        # Read by every process Ray starts (RayConfig reads RAY_<name>).
        env.setenv("RAY_metrics_report_interval_ms", str(METRICS_EXPORT_S * 1000))
        # Serve's proxy and replicas, and the engines under them, at the tests'
        # priority (tests/support/lanes.py).
        for name, value in lanes.RAY_WORKER_ENV.items():
            env.setenv(name, value)
        start_cluster(config, profile, overrides, address=None, metrics_port=metrics_port)
    running = RunningCluster(
        base_url=f"http://127.0.0.1:{port}",
        config=config,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
    )
    # serve.run returns once every deployment is healthy; the proxy answers now.
    assert httpx.get(f"{running.base_url}/healthz", timeout=30).status_code == 200
    yield running
    from tests.e2e.helpers import stop_local_cluster

    stop_local_cluster()


@pytest.fixture(scope="package")
def http(cluster) -> httpx.Client:
    with httpx.Client(base_url=cluster.base_url, timeout=300) as client:
        yield client


@pytest.fixture(scope="package")
def openai_client(cluster):
    import openai

    return openai.OpenAI(base_url=cluster.api_url, api_key="unused", timeout=300, max_retries=0)


@pytest.fixture(scope="package")
def il25_long_prefill_s(http) -> float:
    """Seconds to the first token of a cold IL25_LONG_PROMPT_TOKENS-token
    prompt on il25-long, with a patient client: the faster of two, since the
    pool's first long prefill also pays its warm-up. test_keepalive derives
    its clients' read timeouts from it, test_cancel_prefill the time of one
    prefill chunk. Random ids with their own seeds: no cache hit."""
    from tests.support.rope.compare import random_prompt

    times = []
    for seed in (1598, 1599):
        body = {"model": "internlm2_5-7b-chat-1m", "prompt": random_prompt(IL25_LONG_PROMPT_TOKENS, seed=seed),
                "max_tokens": 1, "temperature": 0, "stream": True}
        started, first_token_s = time.monotonic(), None
        with http.stream("POST", "/v1/completions", json=body) as response:
            assert response.status_code == 200 and response.headers["x-pool"] == "il25-long"
            for line in response.iter_lines():
                if first_token_s is None and line.startswith("data: "):
                    first_token_s = time.monotonic() - started
        assert first_token_s is not None, "no data line"
        times.append(first_token_s)
    return min(times)
