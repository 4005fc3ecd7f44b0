"""Fixed engine, pool band past the native window.

Each model's long pool has band maximum ``long_len`` (2.2x native for
InternLM2, 4.4x for InternLM3) and max_model_len native x factor; the engine
uses the dynamic NTK base for ``long_len`` tokens on every request.
"""

from __future__ import annotations

import math

from tests.support.rope.compare import TOLERANCE, max_abs_diff, random_prompt

# "Disagrees" means clearly outside the tolerance, not marginally.
DISAGREE = 100 * TOLERANCE


def test_past_window_finite_and_matches_reference(long_pool, references):
    n = long_pool.model.long_len
    ids = random_prompt(n)
    engine = long_pool.prompt_logprobs(ids)
    assert all(math.isfinite(v) for v in engine)
    ref = references[long_pool.model.key]
    assert ref.rope.base_for(n) > ref.rope.theta
    diff = max_abs_diff(engine, ref.prompt_logprobs(ids))
    print(f"fixed long pool {long_pool.model.key} len={n} max|diff|={diff:.3g}")
    assert diff <= TOLERANCE


def test_wrong_base_is_detected(long_pool, references):
    """The comparison is sensitive to the base: references with a wrong base
    disagree with the same engine output that the right base agrees with."""
    model = long_pool.model
    n = model.long_len
    ids = random_prompt(n)
    engine = long_pool.prompt_logprobs(ids)
    ref = references[model.key]
    wrong = {
        "unscaled": {"rope_base": ref.rope.theta},
        # A plausible bug: scaling for max_model_len rather than the band.
        f"scaled for {model.max_model_len}": {"ntk_seq_len": model.max_model_len},
    }
    for label, kwargs in wrong.items():
        diff = max_abs_diff(engine, ref.prompt_logprobs(ids, **kwargs))
        print(f"{model.key} len={n} reference {label}: max|diff|={diff:.3g}")
        assert diff > DISAGREE, label


def test_in_band_prompt_uses_the_pool_base(long_pool, references):
    """Documented trade-off: a shorter prompt in the pool is rotated with the
    pool's base (exactly), not with a base for its own length."""
    model = long_pool.model
    n = (model.native + model.long_len) // 2
    ids = random_prompt(n)
    engine = long_pool.prompt_logprobs(ids)
    ref = references[model.key]
    pool_diff = max_abs_diff(engine, ref.prompt_logprobs(ids, ntk_seq_len=model.long_len))
    own_diff = max_abs_diff(engine, ref.prompt_logprobs(ids))
    print(f"{model.key} len={n} in band: vs pool base {pool_diff:.3g}, vs own-length base {own_diff:.3g}")
    assert pool_diff <= TOLERANCE
    assert own_diff > DISAGREE


def test_prefix_cache_hit_matches_reference(long_pool, references):
    """One base per pool keeps cached KV valid: a second question on the same
    long document hits the prefix cache and still matches the reference."""
    model = long_pool.model
    doc = random_prompt(model.long_len - 64, seed=7)
    q1 = random_prompt(32, seed=8)[1:]
    q2 = random_prompt(32, seed=9)[1:]
    long_pool.next_token(doc + q1)
    ids = doc + q2
    token, logprob, cached = long_pool.next_token(ids)
    # Whole blocks of the document are reused; the block size is the engine's.
    assert cached >= 0.9 * len(doc), f"expected a prefix-cache hit, got {cached} cached tokens"
    _, last = references[model.key].logprobs(ids, ntk_seq_len=model.long_len)
    diff = abs(logprob - float(last[token]))
    print(f"{model.key} len={len(ids)} prefix-cache hit ({cached} tokens): |diff|={diff:.3g}")
    assert math.isfinite(logprob) and diff <= TOLERANCE
