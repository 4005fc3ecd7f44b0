"""Cancellation during a long prefill, shown by the engine's own counters.

A client that hangs up while its prompt is still being prefilled must stop
the engine's work within one prefill chunk, for streaming and non-streaming
completions and for a document question. The proof, per case, on the real
stack:

* a ~9k-token prompt (several chunks of the long pool's
  ``max_num_batched_tokens``) is sent, and the client hangs up about one
  chunk's worth of prefill time later (a client with that deadline);
* the ingress frees the admission slot and the engine shows no running or
  waiting request;
* the same prompt sent again reads from vLLM's prefix cache exactly the
  KV the dropped request computed (its answer's
  ``usage.prompt_tokens_details.cached_tokens``): at least its first chunk
  (it was mid-prefill), at most the chunk under way at the hang-up and one
  more (the engine checks for aborts between chunks; on the demo's two
  shared cores the abort may take a chunk's time to reach it), so the
  prompt's last chunks never ran and its prefill never completed.

Prompts are fresh (random ids with a new seed, or a new document), so no
earlier request's cache shortens or pads them.
"""

from __future__ import annotations

import math

import pytest

from tests.e2e.conftest import IL25_LONG_PROMPT_TOKENS
from tests.e2e.helpers import engine_requests_in_progress, hold_for, pool_in_flight, send_and_hold, wait_until
from tests.support.rope.compare import random_prompt

# Hang-ups timed in prefill chunks measured on this machine: nothing else may run meanwhile.
pytestmark = [pytest.mark.e2e, pytest.mark.quiet_machine]

IL25 = "internlm2_5-7b-chat-1m"
LONG = "il25-long"
PROMPT_TOKENS = IL25_LONG_PROMPT_TOKENS
# Fraction of one chunk's average prefill time past the start at which the
# client hangs up: the first chunk (cheaper than the average: attention grows
# with the position) is done, the second under way.
DROP_AT_CHUNKS = 1.25


def _chunk(cluster) -> int:
    chunk = cluster.config.pool(LONG).engine.max_num_batched_tokens
    assert chunk and PROMPT_TOKENS >= 4 * chunk, "the prompt must span several prefill chunks"
    return chunk


@pytest.fixture(scope="module")
def chunk_s(cluster, il25_long_prefill_s) -> float:
    """Average prefill time of one chunk on this machine."""
    return il25_long_prefill_s * _chunk(cluster) / PROMPT_TOKENS


def _idle(cluster, http) -> None:
    wait_until(lambda: pool_in_flight(http, LONG) == 0, 120, "the ingress to release the long pool's slots")
    wait_until(lambda: engine_requests_in_progress(cluster.metrics_url) == 0, 120,
               "no running or waiting request in any engine")


def _drop_mid_prefill(cluster, http, chunk_s: float, path: str, body: dict) -> tuple[int, int]:
    """Send ``body``, hang up one chunk and a bit into its prefill; return the
    prompt's length and the prompt tokens the engine computed for it (read
    back from the prefix cache)."""
    chunk = _chunk(cluster)
    _idle(cluster, http)

    received = hold_for(send_and_hold(cluster.base_url, path, body), DROP_AT_CHUNKS * chunk_s)
    assert b"data: {" not in received and b'"choices"' not in received, "answered before the hang-up"

    _idle(cluster, http)
    # The same prompt again reads what the dropped request computed from the cache.
    again = http.post(path, json={**body, "stream": False})
    assert again.status_code == 200, again.text
    assert again.headers["x-pool"] == LONG
    usage = again.json()["usage"]
    prompt_tokens, computed = usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]
    allowed = (math.ceil(DROP_AT_CHUNKS) + 1) * chunk
    print(f"{path} stream={body.get('stream')}: hung up at {DROP_AT_CHUNKS * chunk_s:.2f} s "
          f"({DROP_AT_CHUNKS} chunks of {chunk_s:.2f} s); engine computed {computed} of {prompt_tokens} "
          f"prompt tokens")
    assert chunk <= computed <= allowed, f"{computed} of {prompt_tokens} prompt tokens computed for a dropped prompt"
    assert computed <= prompt_tokens - chunk
    return prompt_tokens, computed


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_hang_up_mid_prefill_stops_the_engine_within_a_chunk(cluster, http, chunk_s, stream):
    prompt = random_prompt(PROMPT_TOKENS, seed=1691 + stream)
    body = {"model": IL25, "prompt": prompt, "max_tokens": 1, "temperature": 0, "stream": stream}
    prompt_tokens, _ = _drop_mid_prefill(cluster, http, chunk_s, "/v1/completions", body)
    assert prompt_tokens == PROMPT_TOKENS


def test_hang_up_mid_prefill_of_a_document_question(cluster, http, chunk_s):
    # A new text (never cached), ~9k tokens: only the long pool holds it.
    text = " ".join(f"clause1693_{i % 97} binds party{i % 7}." for i in range(1900 // 3))
    upload = http.post("/v1/documents", json={"text": text, "model": IL25})
    assert upload.status_code == 201, upload.text
    doc = upload.json()
    assert doc["pool"][IL25] == LONG and doc["tokens"][IL25] >= 4 * _chunk(cluster), doc
    question = {"question": "Which party is bound?", "max_tokens": 1, "temperature": 0}
    prompt_tokens, _ = _drop_mid_prefill(cluster, http, chunk_s, f"/v1/documents/{doc['id']}/ask", question)
    assert doc["tokens"][IL25] < prompt_tokens
