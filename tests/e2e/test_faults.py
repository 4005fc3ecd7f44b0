"""Faults on the real stack: an engine replica dies in the middle of streams; an engine dies inside a live replica.

The two faults hit two different pools (InternLM3's short and long ones), and
the last test waits for both pools to serve again: Serve replaces the two
replicas at the same time, rather than one after the other per test.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e.helpers import wait_until
from deployments.errors import ErrorCode

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive]

IL3 = "internlm3-8b-instruct"
IL25 = "internlm2_5-7b-chat-1m"


def _chat(model: str, content: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 2}


@pytest.fixture(scope="module")
def killed_pools() -> dict:
    """Pool name -> a request it must answer again once Serve has replaced
    what a test killed; test_killed_pools_serve_again waits for them all."""
    return {}


def _replica_actors(deployment: str) -> list:
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if f"#{deployment}#" in a["name"]]
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in names]


def _stream_until_end(base_url: str, max_tokens: int, out: dict, started: threading.Event) -> None:
    # ~500 prompt tokens + max_tokens fits the first band: the pool under test.
    body = {"model": IL3, "prompt": "alpha " * 500, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=base_url, timeout=600) as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            out["status"] = response.status_code
            out["pool"] = response.headers.get("x-pool")
            lines = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    lines.append(line)
                    started.set()
            out["lines"] = lines


def test_engine_replica_killed_mid_stream(cluster, http, killed_pools):
    import ray

    first_band = cluster.config.pools_of(IL3)[0]
    pool = first_band.name
    max_tokens = first_band.max_tokens - 600
    results = [{} for _ in range(2)]
    events = [threading.Event() for _ in results]
    threads = [threading.Thread(target=_stream_until_end, args=(cluster.base_url, max_tokens, r, e), daemon=True)
               for r, e in zip(results, events)]
    for thread in threads:
        thread.start()
    for event in events:
        assert event.wait(120), "streams did not start"
    (replica,) = _replica_actors(f"pool-{pool}")
    ray.kill(replica, no_restart=True)

    # The in-flight clients get a clean error event and the stream ends: no hang.
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a client hung after its replica died"
    for result in results:
        assert result["status"] == 200 and result["pool"] == pool
        assert result["lines"][-1] == "data: [DONE]"
        assert any('"error"' in line for line in result["lines"]), "no error event before [DONE]"

    # Other pools keep serving meanwhile.
    other = http.post("/v1/chat/completions", json={
        "model": IL25, "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2})
    assert other.status_code == 200

    killed_pools[pool] = _chat(IL3, "back?")


def _engine_core_of(deployment: str):
    """The vLLM EngineCore process under the pool replica's actor process."""
    import psutil

    replicas = [p for p in psutil.process_iter(["cmdline"])
                if any(f"ServeReplica:longctx:{deployment}" in part for part in (p.info["cmdline"] or []))]
    assert len(replicas) == 1, f"expected one replica process of {deployment}, found {len(replicas)}"
    cores = [c for c in replicas[0].children(recursive=True)
             if any("EngineCore" in part for part in c.cmdline())]
    assert cores, f"no EngineCore process under {deployment}'s replica"
    return cores[0]


def test_engine_death_inside_a_live_replica_is_503_until_serve_replaces_it(cluster, http, killed_pools):
    """What the H200 showed (an engine out of GPU memory): the replica lives on, its engine is dead."""
    pool = cluster.config.pools_of(IL3)[1].name
    # Past InternLM3's short band: the long pool's request.
    body = _chat(IL3, "still there? " + "alpha " * cluster.config.pools_of(IL3)[0].max_tokens)
    first = http.post("/v1/chat/completions", json=body)
    assert first.status_code == 200 and first.headers["x-pool"] == pool, first.text
    _engine_core_of(f"pool-{pool}").kill()

    first = http.post("/v1/chat/completions", json=body)
    assert first.status_code == 503, first.text
    error = first.json()["error"]
    assert error["code"] == ErrorCode.ENGINE_FAILED and pool in error["message"] and "EngineDeadError" in error["message"]
    assert int(first.headers["retry-after"]) > 0

    # Other pools are untouched; this one answers 503 (never a 500) until Serve
    # has replaced the replica whose health check now fails.
    other = http.post("/v1/chat/completions", json={**body, "model": IL25})
    assert other.status_code == 200
    killed_pools[pool] = body


def test_killed_pools_serve_again(http, killed_pools):
    """Serve brings every killed replica back and its pool answers again. While
    one is down the ingress answers 503 (never a 5xx of its own making, never a hang)."""
    assert killed_pools, "no fault test ran before this one"

    def pool_serves(pool: str, body: dict) -> bool:
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.json()["error"]["code"] in (ErrorCode.POOL_UNAVAILABLE, ErrorCode.ENGINE_FAILED)
            return False
        assert response.headers["x-pool"] == pool
        return True

    waiting = dict(killed_pools)

    def all_serve() -> bool:
        for pool, body in list(waiting.items()):
            if pool_serves(pool, body):
                del waiting[pool]
        return not waiting

    wait_until(all_serve, 300, f"pools {sorted(killed_pools)} to serve again after their faults")
