"""Real-size random checkpoints: the published dimensions, the planner's, and reduced depth."""

import pytest

from cluster.planner import ARCHITECTURES
from cluster.real_size import REAL_SIZE_MODELS, spec_for


@pytest.mark.parametrize("model", sorted(REAL_SIZE_MODELS))
def test_dimensions_match_the_planners_published_architecture(model):
    spec, arch = spec_for(model), ARCHITECTURES[REAL_SIZE_MODELS[model].architecture]
    assert (spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers) == (
        arch.hidden_size, arch.intermediate_size, arch.num_layers)
    assert (spec.num_attention_heads, spec.num_key_value_heads, spec.head_dim, spec.vocab_size) == (
        arch.num_heads, arch.num_kv_heads, arch.head_dim, arch.vocab_size)


def test_reduced_depth_keeps_the_width_and_names_itself():
    full, reduced = spec_for("internlm2_5-7b-chat-1m"), spec_for("internlm2_5-7b-chat-1m", layers=4)
    assert reduced.num_hidden_layers == 4 and reduced.name == f"{full.name}-4l"
    assert (reduced.hidden_size, reduced.num_key_value_heads, reduced.rope_scaling) == (
        full.hidden_size, full.num_key_value_heads, full.rope_scaling)


def test_attention_logit_scale_matches_the_demo_at_real_width():
    # Same q.k logit variance as the demo (std 0.08 at width 512): position-sensitive attention.
    spec = spec_for("internlm2_5-7b-chat-1m")
    assert spec.hidden_size * spec.qk_init_std**2 == pytest.approx(512 * 0.08**2)
