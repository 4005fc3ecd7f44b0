"""Keep-alive before the first token on the real stack: a client whose read
timeout is shorter than the prefill survives when the pool sends heartbeats,
and fails without them.

The session cluster runs il25-long with a short heartbeat and every other pool
with the heartbeat off (tests/e2e/conftest.py). Prompts are random token ids,
a new seed per request, so no prefix-cache hit shortens a prefill.
"""

from __future__ import annotations

import time

import httpx
import pytest

# il25_long_prefill_s (tests/e2e/conftest.py): a cold 9k-token prefill on il25-long.
from tests.e2e.conftest import LONG_POOL_HEARTBEAT_S
from tests.support.rope.compare import random_prompt

# Read timeouts derived from a measured prefill: nothing else may run meanwhile.
pytestmark = [pytest.mark.e2e, pytest.mark.quiet_machine]

IL25, IL3 = "internlm2_5-7b-chat-1m", "internlm3-8b-instruct"
# How much shorter than the measured prefill the client's read timeout is:
# prefill time depends on the machine, so the timeout is derived from it.
TIMEOUT_SHARE = 1 / 3


def _short_read(base_url: str, read_timeout_s: float) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=read_timeout_s))


def _body(model: str, tokens: int, seed: int) -> dict:
    return {"model": model, "prompt": random_prompt(tokens, seed=seed), "max_tokens": 4, "temperature": 0,
            "stream": True}


def _first_token_s(http, body: dict) -> float:
    """Seconds to the first data line, with a patient client."""
    started = time.monotonic()
    with http.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                return time.monotonic() - started
    raise AssertionError("no data line")


def test_stream_outlives_a_read_timeout_shorter_than_the_prefill(cluster, il25_long_prefill_s):
    read_timeout_s = il25_long_prefill_s * TIMEOUT_SHARE
    assert LONG_POOL_HEARTBEAT_S < read_timeout_s / 2, "heartbeat too slow for this machine's prefill"
    body = _body(IL25, 9000, seed=1601)
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with _short_read(cluster.base_url, read_timeout_s) as client, \
            client.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["x-pool"] == "il25-long"
        assert response.headers["x-replica"].startswith("pool-il25-long#")
        for line in response.iter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
    first_data = next(i for i, (_, line) in enumerate(lines) if line.startswith("data: "))
    first_token_s = lines[first_data][0]
    assert first_token_s > read_timeout_s, f"prefill of {first_token_s:.2f} s does not test the timeout"
    comments = [line for _, line in lines[:first_data]]
    assert len(comments) >= first_token_s / LONG_POOL_HEARTBEAT_S / 2
    assert all(line.startswith(": prefill ") and line.endswith("s") for line in comments)
    assert not any(line.startswith(":") for _, line in lines[first_data:])
    assert lines[-1][1] == "data: [DONE]"
    assert '"error"' not in "".join(line for _, line in lines)


def test_without_heartbeat_the_same_client_times_out(cluster, http):
    # il3-long runs with the heartbeat off; the client's timeout is a third of its prefill.
    assert cluster.config.heartbeat_s("il3-long", stream=True) == 0
    read_timeout_s = min(_first_token_s(http, _body(IL3, 12000, seed=seed)) for seed in (1602, 1605)) * TIMEOUT_SHARE
    with pytest.raises(httpx.ReadTimeout), _short_read(cluster.base_url, read_timeout_s) as client:
        with client.stream("POST", "/v1/completions", json=_body(IL3, 12000, seed=1603)) as response:
            for _ in response.iter_lines():
                pass


@pytest.mark.parametrize("frame, seed", [("comment", 1604), ("blank", 1606)])
def test_openai_client_streams_through_the_heartbeats(openai_client, il25_long_prefill_s, frame, seed):
    # Its read timeout is shorter than the prefill: only the heartbeats, of
    # either frame, keep it from timing out.
    stream = openai_client.completions.create(
        model=IL25, prompt=random_prompt(9000, seed=seed), max_tokens=4, temperature=0, stream=True,
        timeout=httpx.Timeout(30, read=il25_long_prefill_s * TIMEOUT_SHARE),
        extra_headers={"x-stream-heartbeat": frame},
    )
    chunks = list(stream)
    assert chunks and all(c.object == "text_completion" for c in chunks)
    assert sum(len(c.choices) for c in chunks) >= 1
