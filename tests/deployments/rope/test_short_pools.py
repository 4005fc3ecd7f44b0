"""Fixed engine, pool band inside the native window: base unchanged.

The pool's max_model_len reaches past the window (room to generate), so the
plugin's extended cos/sin cache is in play while the base stays the model's
unscaled rope_theta.
"""

from __future__ import annotations

import math

from tests.support.rope.compare import TOLERANCE, max_abs_diff, random_prompt

INSIDE = 1500


def test_pool_kwargs_keep_unscaled_base(short_pool):
    assert short_pool.extra == {
        "hf_overrides": {"dynamic_ntk_seq_len": short_pool.model.native}
    }


def test_inside_window_finite_and_matches_reference(short_pool, references):
    ids = random_prompt(INSIDE)
    engine = short_pool.prompt_logprobs(ids)
    assert all(math.isfinite(v) for v in engine)
    ref = references[short_pool.model.key]
    assert ref.rope.base_for(INSIDE) == ref.rope.theta
    diff = max_abs_diff(engine, ref.prompt_logprobs(ids))
    print(f"fixed short pool {short_pool.model.key} len={INSIDE} max|diff|={diff:.3g}")
    assert diff <= TOLERANCE
