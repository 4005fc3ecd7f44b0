"""Server-Timing on the real stack: where a request's first answer spent its time.

The ingress times its own steps and the hop to the pool replica; the replica
times its server and reads vLLM's own per-request stats; all of them arrive
in the response's Server-Timing header (docs/operations.md).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"


def spans(header: str) -> dict[str, float]:
    """Server-Timing ``name;dur=ms`` entries, in seconds."""
    out = {}
    for entry in header.split(","):
        name, _, duration = entry.strip().partition(";dur=")
        out[name] = float(duration) / 1000
    return out


def _chat(http, *, stream: bool) -> dict[str, float]:
    body = {"model": IL25, "messages": [{"role": "user", "content": "Where did the time go?"}],
            # A stream long enough that the request still runs when its first
            # item leaves the engine (vLLM keeps its stats only while it runs);
            # it is not read past its headers: closing it stops the engine.
            "max_tokens": 64 if stream else 4, "stream": stream}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, response.read()
        return spans(response.headers["server-timing"])


def test_a_streamed_answer_times_ingress_replica_and_engine(http):
    timing = _chat(http, stream=True)
    assert {"tokenize", "route", "handle", "first_item", "server",
            "vllm_ttft", "vllm_queue", "vllm_prefill"} <= set(timing)
    assert all(seconds >= 0 for seconds in timing.values())
    # Each layer's span lies inside the one around it.
    assert timing["vllm_queue"] + timing["vllm_prefill"] <= timing["vllm_ttft"] + 1e-3
    assert timing["vllm_ttft"] <= timing["server"]
    assert timing["server"] <= timing["handle"] + timing["first_item"]


def test_a_whole_answer_times_ingress_and_replica(http):
    timing = _chat(http, stream=False)
    assert {"tokenize", "route", "handle", "first_item", "server"} <= set(timing)
    assert timing["server"] <= timing["handle"] + timing["first_item"]
