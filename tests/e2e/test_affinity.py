"""Replica choice on the real stack: requests sharing a long prefix meet their cache."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"


def _ask(http, prefix: str, question: str) -> str:
    response = http.post("/v1/chat/completions", json={
        "model": IL25,
        "messages": [{"role": "system", "content": prefix}, {"role": "user", "content": question}],
        "max_tokens": 2,
    })
    assert response.status_code == 200, response.text
    return response.headers["x-pool"], response.headers["x-replica"]


def test_shared_long_prefix_sticks_to_one_replica_and_keys_spread(http, cluster):
    short = cluster.config.pools_of(IL25)[0]
    assert short.replicas.min >= 2, "the demo's short pool needs two replicas for this test"
    words = short.routing.prefix_tokens + 100  # past the prefix-key threshold, under the band
    owners = {}
    for doc in range(16):
        prefix = f"document {doc}: " + " ".join(f"w{doc}x{i}" for i in range(words // 3))
        first_pool, first = _ask(http, prefix, "What is this about?")
        assert first_pool == short.name
        for question in ("Who wrote it?", "When?"):
            assert _ask(http, prefix, question)[1] == first
        owners[doc] = first
    # Different documents hash to different replicas (16 keys on 2 replicas:
    # all on one would have probability 2^-15).
    assert len(set(owners.values())) == 2
