"""Unit level: the math, the pool helpers and the plugin, without an engine."""

from __future__ import annotations

import pytest
import torch

from deployments.rope import engine_kwargs_for_pool, max_supported_len
from deployments.rope.ntk import dynamic_ntk_base

IL25 = {"type": "dynamic", "factor": 2.5}  # legacy key, as in InternLM2.5's config.json
IL3 = {"rope_type": "dynamic", "factor": 6.0}


@pytest.mark.parametrize("key", ["internlm2", "internlm3"])
def test_base_matches_transformers_dynamic_ntk(key, demo_models):
    """Our definition of "correct" is HF's own dynamic NTK, checked against
    transformers' implementation on the demo configs."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import _compute_dynamic_ntk_parameters

    model = demo_models[key]
    config = AutoConfig.from_pretrained(model.path, trust_remote_code=True)
    d = config.head_dim
    for seq_len in (model.native // 2, model.native, model.native + 1, 9000, model.max_model_len):
        hf_inv_freq, _ = _compute_dynamic_ntk_parameters(config, seq_len=seq_len)
        base = dynamic_ntk_base(config.rope_parameters["rope_theta"], model.rope_scaling["factor"],
                                model.native, seq_len, d)
        ours = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        torch.testing.assert_close(ours, hf_inv_freq, rtol=1e-6, atol=0)
        if seq_len <= model.native:
            assert base == config.rope_parameters["rope_theta"]


def test_max_supported_len():
    assert max_supported_len(262_144, IL25) == 1_048_576  # published 1M
    assert max_supported_len(32_768, IL3) == 196_608  # native x 6
    assert max_supported_len(4096, IL25) == 10_240  # tiny demo
    assert max_supported_len(2048, IL3) == 12_288
    assert max_supported_len(4096, None) == 4096
    assert max_supported_len(4096, {"rope_type": "linear", "factor": 2.0}) == 8192


def test_pool_inside_native_window_needs_nothing():
    assert engine_kwargs_for_pool(native_context=4096, rope_scaling=IL25,
                                  max_model_len=4096, band_max_tokens=2048) == {}
    assert engine_kwargs_for_pool(native_context=4096, rope_scaling=None,
                                  max_model_len=4096, band_max_tokens=4096) == {}


def test_pool_past_native_window_gets_band_base():
    kw = engine_kwargs_for_pool(native_context=4096, rope_scaling=IL25,
                                max_model_len=10_240, band_max_tokens=9000)
    assert kw == {"hf_overrides": {"dynamic_ntk_seq_len": 9000}}
    # Band inside the window but generation room past it: unscaled base.
    kw = engine_kwargs_for_pool(native_context=4096, rope_scaling=IL25,
                                max_model_len=6144, band_max_tokens=2048)
    assert kw == {"hf_overrides": {"dynamic_ntk_seq_len": 4096}}
    # A band beyond max_model_len is clipped to it.
    kw = engine_kwargs_for_pool(native_context=2048, rope_scaling=IL3,
                                max_model_len=12_288, band_max_tokens=50_000)
    assert kw == {"hf_overrides": {"dynamic_ntk_seq_len": 12_288}}


def test_production_1m_pool_passes_vllm_length_check():
    kw = engine_kwargs_for_pool(native_context=262_144, rope_scaling=IL25,
                                max_model_len=1_048_576, band_max_tokens=1_040_000)
    assert kw == {"hf_overrides": {"dynamic_ntk_seq_len": 1_040_000,
                                   "model_max_length": 1_048_576}}


def test_pool_beyond_supported_length_is_refused():
    with pytest.raises(ValueError, match=r"max_model_len 20000 exceeds .* at most 12288"):
        engine_kwargs_for_pool(native_context=2048, rope_scaling=IL3,
                               max_model_len=20_000, band_max_tokens=20_000)
    with pytest.raises(ValueError, match="at most 4096"):
        engine_kwargs_for_pool(native_context=4096, rope_scaling=None,
                               max_model_len=8192, band_max_tokens=8192)


def test_plugin_is_idempotent_and_reads_the_pool_hint(demo_models):
    """register() twice is harmless; inside an engine's config the swapped-in
    class sizes its cache to max_model_len and uses the pool's base."""
    from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config
    from vllm.model_executor.custom_op import op_registry_oot
    from vllm.model_executor.layers.rotary_embedding import (
        DynamicNTKScalingRotaryEmbedding,
        RotaryEmbedding,
    )

    from deployments.rope import plugin
    from deployments.rope.rotary import PoolDynamicNTKRotaryEmbedding

    plugin.register()
    plugin.register()
    assert op_registry_oot["DynamicNTKScalingRotaryEmbedding"] is PoolDynamicNTKRotaryEmbedding

    model = demo_models["internlm2"]
    theta, factor, native = 5e7, 2.5, model.native
    cases = [
        # (max_model_len, hf_overrides, expected cache rows, expected base length)
        (native, {}, native, native),  # inside the window: identical to stock
        (10_240, {}, 10_240, 10_240),  # no pool hint: base for max_model_len
        (10_240, {"dynamic_ntk_seq_len": 6000}, 10_240, 6000),
    ]
    for max_model_len, overrides, rows, seq_len in cases:
        mc = ModelConfig(model=str(model.path), trust_remote_code=True,
                         max_model_len=max_model_len, hf_overrides=overrides)
        with set_current_vllm_config(VllmConfig(model_config=mc)):
            rope = DynamicNTKScalingRotaryEmbedding(64, 64, native, native, theta, True,
                                                    factor, torch.float32)
            plain = RotaryEmbedding(64, 64, rows, dynamic_ntk_base(theta, factor, native, seq_len, 64),
                                    True, torch.float32)
        assert type(rope) is PoolDynamicNTKRotaryEmbedding
        assert rope.cos_sin_cache.shape == (rows, 64)
        torch.testing.assert_close(rope.cos_sin_cache, plain.cos_sin_cache, rtol=0, atol=0)
