"""Reliability on the real stack: admission control and cancellation."""

from __future__ import annotations

import contextlib
import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.helpers import engine_aborts, engine_requests_in_progress, wait_until

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"


def _long_stream_body(cluster, tokens: int = 2600) -> dict:
    # Over the short band, so it lands in the long pool; ignore_eos keeps the
    # engine busy for the whole max_tokens.
    return {
        "model": IL25,
        "prompt": "alpha " * tokens,
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }


def test_full_long_pool_answers_429_and_disconnects_free_the_engine(cluster, http):
    long_pool = cluster.config.pools_of(IL25)[-1]
    limit = long_pool.max_in_flight
    body = _long_stream_body(cluster)
    aborted_before = engine_aborts(cluster.metrics_url)
    with contextlib.ExitStack() as stack:
        streams = []
        for _ in range(limit):
            client = stack.enter_context(httpx.Client(base_url=cluster.base_url, timeout=300))
            response = stack.enter_context(client.stream("POST", "/v1/completions", json=body))
            assert response.status_code == 200
            assert response.headers["x-pool"] == long_pool.name
            streams.append(response)
        # Every admitted stream has produced a token: they all hold a slot now.
        for response in streams:
            first = next(line for line in response.iter_lines() if line.startswith("data:"))
            assert '"text"' in first
        refused = http.post("/v1/completions", json={**body, "stream": False})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(long_pool.admission.retry_after_s)
        error = refused.json()["error"]
        assert error["code"] == "pool_overloaded" and f"limit of {limit}" in error["message"]
        # Other pools are unaffected while this one is full.
        other = http.post("/v1/chat/completions", json={
            "model": IL25, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert other.status_code == 200 and other.headers["x-pool"] != long_pool.name
        assert engine_requests_in_progress(cluster.metrics_url) >= 1
    # Leaving the block closed every connection mid-stream: the engines must
    # abort that work rather than generate 2,000 tokens nobody reads.
    wait_until(lambda: engine_aborts(cluster.metrics_url) >= aborted_before + limit, 120,
               f"the engine to abort the {limit} disconnected streams")
    wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) == 0, 120,
               "the engines to drop the disconnected requests")
    # And the ingress gave the slots back.
    again = http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 2})
    assert again.status_code == 200


def test_non_streaming_disconnect_aborts_engine_work(cluster):
    body = json.dumps({**_long_stream_body(cluster), "stream": False}).encode()
    aborted_before = engine_aborts(cluster.metrics_url)
    url = urlsplit(cluster.base_url)
    # A raw socket: send the request, then hang up without reading, as a
    # client that gives up would.
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) >= 1, 60,
                   "the request to start in the engine")
    # vLLM counts it as aborted (not finished by length): the disconnect
    # reached the engine.
    wait_until(lambda: engine_aborts(cluster.metrics_url) >= aborted_before + 1, 120,
               "the engine to abort the abandoned request")
