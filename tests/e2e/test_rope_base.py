"""Per-request rotary base through the router (cpu-demo's long pools in request mode).

The ingress sends each long prompt's own length L to the engine and salts
vLLM's prefix cache with it: a prompt extending a cached one by a few tokens
(another L) must not read its KV, the same prompt again (the same L) must.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import prefix_cache_hits, settled
from tests.support.rope.compare import random_prompt

pytestmark = pytest.mark.e2e

IL3 = "internlm3-8b-instruct"


def complete(http, ids: list[int], max_tokens: int = 1):
    response = http.post("/v1/completions", json={"model": IL3, "prompt": ids, "max_tokens": max_tokens,
                                                  "temperature": 0})
    assert response.status_code == 200, response.text
    return response.headers


def test_each_length_gets_its_own_base_and_cache(http, cluster):
    assert cluster.config.pool("il3-long").rope_base.mode == "request"
    ids = random_prompt(2300, seed=2828)
    headers = complete(http, ids)
    assert (headers["x-pool"], headers["x-rope-seq-len"], headers["x-rope-base-ratio"]) == ("il3-long", "2300", "1")
    before = settled(lambda: prefix_cache_hits(cluster.metrics_url))
    longer = ids + random_prompt(60, seed=2829)[1:]
    assert complete(http, longer)["x-rope-seq-len"] == str(len(longer))  # another L: salted apart
    assert complete(http, ids)["x-rope-seq-len"] == "2300"  # the same L: its cached prefix
    hits = settled(lambda: prefix_cache_hits(cluster.metrics_url)) - before
    # One prompt's worth of full blocks: the repeat hit, the longer prompt did not.
    assert 2048 <= hits < 2300, hits


def test_a_prompt_only_max_tokens_pushed_past_the_window_gets_the_stock_base(http):
    headers = complete(http, random_prompt(2000, seed=2830), max_tokens=100)
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
