"""Long context through the router: past the native RoPE window, logprobs
match the plain-PyTorch reference at the prompt's own base (deployments/rope,
cpu-demo's long pools in rope_base request mode)."""

from __future__ import annotations

import math

import pytest

from tests.support.rope.compare import TOLERANCE, max_abs_diff, random_prompt

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("model, native_multiple", [("internlm2_5-7b-chat-1m", 1.5), ("internlm3-8b-instruct", 4.4)])
def test_long_pool_logprobs_match_reference_past_native_window(http, cluster, model, native_multiple):
    from tests.support.rope.reference import ReferenceModel

    config = cluster.config.models[model]
    length = int(config.native_context * native_multiple)
    long_pool = cluster.config.pools_of(model)[-1]
    assert long_pool.min_tokens <= length + 1 <= long_pool.max_tokens
    ids = random_prompt(length, seed=7)
    response = http.post("/v1/completions", json={
        "model": model, "prompt": ids, "max_tokens": 1, "prompt_logprobs": 0, "temperature": 0})
    assert response.status_code == 200, response.text
    assert response.headers["x-pool"] == long_pool.name
    entries = response.json()["choices"][0]["prompt_logprobs"]
    engine = [entries[i][str(ids[i])]["logprob"] for i in range(1, len(ids))]
    assert all(math.isfinite(v) for v in engine), "non-finite prompt logprobs past the native window"
    # cpu-demo's long pools rotate each prompt with the base for its own length (rope_base request).
    assert long_pool.rope_base.mode == "request" and response.headers["x-rope-seq-len"] == str(length)
    reference = ReferenceModel(config.path).prompt_logprobs(ids, ntk_seq_len=length)
    assert max_abs_diff(engine, reference.tolist()) < TOLERANCE
    # ... which the pool's one base (the band maximum's) is not.
    pool_base = ReferenceModel(config.path).prompt_logprobs(ids, ntk_seq_len=long_pool.max_tokens)
    assert max_abs_diff(engine, pool_base.tolist()) > 100 * TOLERANCE
    # Sensitive: the stock (unscaled) base is far off at these lengths.
    stock = ReferenceModel(config.path).prompt_logprobs(ids, ntk_seq_len=config.native_context)
    assert max_abs_diff(engine, stock.tolist()) > 100 * TOLERANCE
