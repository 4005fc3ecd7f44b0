"""Per-request rotary base through the router (cpu-demo's long pools in request mode).

The ingress sends each long prompt's own length L to the engine and salts
vLLM's prefix cache with it: a prompt extending a cached one by a few tokens
(another L) must not read its KV, the same prompt again (the same L) must.
"""

from __future__ import annotations

import pytest

from tests.support.rope.compare import random_prompt

pytestmark = pytest.mark.e2e

IL3 = "internlm3-8b-instruct"


def complete(http, ids: list[int], max_tokens: int = 1):
    response = http.post("/v1/completions", json={"model": IL3, "prompt": ids, "max_tokens": max_tokens,
                                                  "temperature": 0})
    assert response.status_code == 200, response.text
    return response


def cached_tokens(response) -> int:
    """Prompt tokens the engine read from its prefix cache (the e2e cluster has vLLM report them on il3-long)."""
    return response.json()["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_each_length_gets_its_own_base_and_cache(http, cluster):
    assert cluster.config.pool("il3-long").rope_base.mode == "request"
    ids = random_prompt(2300, seed=2828)
    first = complete(http, ids)
    assert (first.headers["x-pool"], first.headers["x-rope-seq-len"], first.headers["x-rope-base-ratio"]) == (
        "il3-long", "2300", "1")
    assert cached_tokens(first) == 0
    longer = complete(http, ids + random_prompt(60, seed=2829)[1:])
    # Another L, another cache salt: nothing of the first prompt's KV (computed under another base) is read.
    assert longer.headers["x-rope-seq-len"] == "2359" and cached_tokens(longer) == 0
    again = complete(http, ids)
    # The same L: the whole prompt's full blocks come from the cache.
    assert again.headers["x-rope-seq-len"] == "2300" and cached_tokens(again) >= 2048


def test_a_prompt_only_max_tokens_pushed_past_the_window_gets_the_stock_base(http):
    headers = complete(http, random_prompt(2000, seed=2830), max_tokens=100).headers
    assert (headers["x-pool"], headers["x-rope-seq-len"], headers["x-rope-base-ratio"]) == ("il3-long", "2048", "1")


def test_every_question_on_a_document_shares_one_length(http, cluster):
    text = " ".join(f"clause28_{i % 97} obliges party{i % 7}." for i in range(160))
    document = http.post("/v1/documents", json={"text": text, "model": IL3}).json()
    tokens = document["tokens"][IL3]
    assert document["pool"][IL3] == "il3-long" and tokens > cluster.config.models[IL3].native_context
    response = http.post(f"/v1/documents/{document['id']}/ask",
                         json={"questions": ["Who?", "Which clause obliges party three, and how?"], "max_tokens": 2})
    assert response.status_code == 200, response.text
    # The document's prefix plus the question budget (default_max_tokens + 64), for both questions.
    budget = cluster.config.models[IL3].default_max_tokens + 64
    assert response.headers["x-rope-seq-len"] == f"{tokens + budget},{tokens + budget}"
    ratios = [float(r) for r in response.headers["x-rope-base-ratio"].split(",")]
    assert 1 < ratios[1] < ratios[0] < 1.2  # the longer question is closer to its own base
