"""Reliability on the real stack: admission control and cancellation."""

from __future__ import annotations

import pytest

from deployments.errors import ErrorCode
from tests.e2e.helpers import (
    engine_generation_tokens,
    engine_requests_in_progress,
    pool_in_flight,
    send_and_hold,
    settled,
    wait_until,
)

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"


def _long_stream_body(cluster, prompt_tokens: int = 2600) -> dict:
    """A token-id prompt past the short band (so it lands in the long pool)
    asking for as many tokens as the band allows: even the tiny demo model
    needs tens of seconds for them, long enough to hold its slot. ignore_eos
    keeps the engine busy for all of them."""
    long_pool = cluster.config.pools_of(IL25)[-1]
    return {
        "model": IL25,
        "prompt": [1] + [500 + i % 3000 for i in range(prompt_tokens - 1)],
        "max_tokens": long_pool.max_tokens - prompt_tokens,
        "ignore_eos": True,
        "stream": True,
    }


def test_full_long_pool_answers_429_and_disconnects_free_the_engine(cluster, http):
    long_pool = cluster.config.pools_of(IL25)[-1]
    limit = long_pool.max_in_flight
    body = _long_stream_body(cluster)
    generated_before = settled(lambda: engine_generation_tokens(cluster.metrics_url))
    # `limit` streaming clients: the engines run max_num_seqs of them, the
    # rest wait in the engine queue; all hold an admission slot.
    clients = [send_and_hold(cluster.base_url, "/v1/completions", body) for _ in range(limit)]
    try:
        # The ingress's own count (engine metrics lag by Ray's export interval).
        wait_until(lambda: pool_in_flight(http, long_pool.name) == limit, 120,
                   f"{limit} requests admitted to {long_pool.name}")
        refused = http.post("/v1/completions", json={**body, "stream": False})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(long_pool.admission.retry_after_s)
        error = refused.json()["error"]
        assert error["code"] == ErrorCode.POOL_OVERLOADED and f"limit of {limit}" in error["message"]
        # Other pools are unaffected while this one is full.
        other = http.post("/v1/chat/completions", json={
            "model": IL25, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert other.status_code == 200 and other.headers["x-pool"] != long_pool.name
    finally:
        for conn in clients:
            conn.close()
    # The clients hung up mid-generation: the ingress gives the slots back and
    # the engines abort the work rather than generate tokens nobody reads.
    wait_until(lambda: pool_in_flight(http, long_pool.name) == 0, 120, "the admission slots to be released")
    wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) == 0, 600,
               "the engines to drop the disconnected requests")
    generated = settled(lambda: engine_generation_tokens(cluster.metrics_url)) - generated_before
    assert generated < limit * body["max_tokens"] / 2, f"{generated} tokens generated for abandoned streams"
    again = http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 2})
    assert again.status_code == 200


def test_non_streaming_disconnect_aborts_engine_work(cluster, http):
    request = {**_long_stream_body(cluster), "stream": False}
    generated_before = settled(lambda: engine_generation_tokens(cluster.metrics_url))
    long_pool = cluster.config.pools_of(IL25)[-1]
    conn = send_and_hold(cluster.base_url, "/v1/completions", request)
    with conn:
        wait_until(lambda: pool_in_flight(http, long_pool.name) == 1, 60,
                   "the request to be admitted and sent to the engine")
    wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) == 0, 600,
               "the engine to drop the abandoned request")
    # Had it run on, it would have generated all its max_tokens.
    generated = settled(lambda: engine_generation_tokens(cluster.metrics_url)) - generated_before
    assert generated < request["max_tokens"] / 2, f"{generated} tokens generated for an abandoned request"
