"""One engine per architecture, each request rotated with the base for its own L (issue 28).

The engine is the CPU demo's longest pool of the model (max_model_len at the
top of its longest band, pool base for that top). One ``generate`` call
serves, batched together, prompts at lengths across every band of the CPU
demo profile, each carrying ``L`` = its own length, plus prompts at the low
end of each long band that carry the band's top as ``L`` (today's ``pool``
mode) or no key at all. Every request generates two tokens: the first comes
from the prefill, the second from a decode step that must keep the
request's base. Logprobs are compared with the plain-PyTorch fp32 reference
(tests/support/rope/reference.py) within ``AGREE`` nats, the issue's bar.

Replaces the per-pool engines (each assertion says where the old one went):

* test_long_pools: ``past_window_finite_and_matches_reference`` ->
  ``test_own_base_matches_reference`` (mid and top of each long band);
  ``wrong_base_is_detected`` and ``in_band_prompt_uses_the_pool_base`` ->
  ``test_band_top_base_misses_at_the_low_end`` (a base for the band's top is
  detected, and is what the engine applied); ``prefix_cache_hit_matches_reference``
  -> ``test_document_questions_share_the_cached_prefix``.
* test_short_pools (band inside the window, max_model_len past it: stock
  base) -> the in-window lengths of ``test_own_base_matches_reference``.
* test_stock (stock vLLM NaN/garbage past the window, in a second engine
  process) is dropped: it cost two engine starts, and the reference's own
  validity rests on test_ntk.test_base_matches_transformers_dynamic_ntk (HF's
  formula) and on the in-window agreement here.
* new: ``test_requests_without_the_key_keep_the_pool_base`` (pool mode unchanged).
"""

from __future__ import annotations

import pytest

from tests.deployments.rope.conftest import Ask, Engine
from tests.support.rope.compare import random_prompt

# Nats: the agreement bar for the fp32 demo. A wrong base by 0.1 % moves
# the demo's logprobs by about 0.04 nats; measured agreement is ~1e-5.
AGREE = 0.02
TOP_K = 5
DOC_QUESTION = 64  # question budget on top of a document


def band_lengths(model) -> list[int]:
    """Prompt lengths covering every band: inside the window its middle and
    its top edge; past the window just past its start, its middle, its top."""
    lengths = []
    for lo, hi in model.bands:
        if hi <= model.native:
            lengths += [(lo + hi) // 2, hi - 64]
        else:
            lengths += [lo + 64, (lo + hi) // 2, hi - 8]
    return lengths


def top_diff(top: dict[int, float], reference) -> float:
    return max(abs(lp - float(reference[token])) for token, lp in top.items())


@pytest.fixture(scope="module", params=["internlm2", "internlm3"])
def served(request, demo_models):
    """Every ask of one architecture, answered by one engine."""
    model = demo_models[request.param]
    top = max(hi for _, hi in model.bands)
    long_bands = [(lo, hi) for lo, hi in model.bands if hi > model.native]
    own = [Ask(random_prompt(n), n) for n in band_lengths(model)]
    band_top = [Ask(random_prompt(lo + 64), hi) for lo, hi in long_bands]
    no_key = [Ask(random_prompt(long_bands[-1][0] + 64), None)]
    doc = random_prompt((long_bands[-1][0] + top) // 2 - DOC_QUESTION, seed=7)
    doc_len = len(doc) + DOC_QUESTION
    first_question = Ask(doc + random_prompt(32, seed=8)[1:], doc_len)
    asks = own + band_top + no_key + [first_question]
    engine = Engine(model, max_model_len=top, band_max_tokens=top)
    try:
        answers = engine.generate(asks, max_tokens=2, top_k=TOP_K)
        # The second question on the document, after the first has cached it.
        second_question = Ask(doc + random_prompt(32, seed=9)[1:], doc_len)
        [second] = engine.generate([second_question], max_tokens=2, top_k=TOP_K)
    finally:
        engine.close()
    return {
        "model": model,
        "pool_seq_len": top,
        "own": list(zip(own, answers[: len(own)])),
        "band_top": list(zip(band_top, answers[len(own) : len(own) + len(band_top)])),
        "no_key": list(zip(no_key, answers[len(own) + len(band_top) : -1])),
        "document": (len(doc), second_question, second),
    }


def diffs_against(reference, ask: Ask, answer, seq_len: int) -> list[float]:
    """Per generated token: max |engine - reference| over the engine's top-k,
    the reference rotating prompt and generated token with the base for seq_len."""
    dists = reference.last_distributions(ask.token_ids + answer.tokens[:1], 2, ntk_seq_len=seq_len)
    return [top_diff(top, dist) for top, dist in zip(answer.top, dists)]


def test_own_base_matches_reference(served, references):
    """Each length of each band, rotated with the base for its own length
    (stock inside the window): prefill and decode agree with the reference."""
    model, ref = served["model"], references[served["model"].key]
    worst = {}
    for ask, answer in served["own"]:
        n = len(ask.token_ids)
        if n <= model.native:
            assert ref.rope.base_for(n) == ref.rope.theta
        worst[n] = diffs_against(ref, ask, answer, n)
    print(f"{model.key} own base, max|diff| (prefill, decode) by length: {worst}")
    assert all(d <= AGREE for ds in worst.values() for d in ds), worst


def test_band_top_base_misses_at_the_low_end(served, references):
    """L = the band's top (today's pool mode) at the low end of a long band:
    the engine applied exactly that base, and it is far from the prompt's own
    (the check that fails on a per-pool base)."""
    model, ref = served["model"], references[served["model"].key]
    for ask, answer in served["band_top"]:
        n = len(ask.token_ids)
        applied = diffs_against(ref, ask, answer, ask.seq_len)
        own = diffs_against(ref, ask, answer, n)
        print(f"{model.key} len={n} L={ask.seq_len}: vs its base {applied}, vs own-length base {own}")
        assert max(applied) <= AGREE
        assert own[0] > AGREE


def test_requests_without_the_key_keep_the_pool_base(served, references):
    """No vllm_xargs key: the pool's base (hf_overrides dynamic_ntk_seq_len), as before issue 28."""
    model, ref = served["model"], references[served["model"].key]
    for ask, answer in served["no_key"]:
        diffs = diffs_against(ref, ask, answer, served["pool_seq_len"])
        print(f"{model.key} len={len(ask.token_ids)} no key: vs pool base {diffs}")
        assert max(diffs) <= AGREE


def test_document_questions_share_the_cached_prefix(served, references):
    """Two questions on a document carry one L (document + question budget):
    the second reuses the first's KV and still matches the reference."""
    model, ref = served["model"], references[served["model"].key]
    doc_len, ask, answer = served["document"]
    assert answer.cached >= 0.9 * doc_len, f"expected a prefix-cache hit, got {answer.cached} tokens"
    diffs = diffs_against(ref, ask, answer, ask.seq_len)
    print(f"{model.key} document of {doc_len} tokens, cached {answer.cached}: {diffs}")
    assert max(diffs) <= AGREE
