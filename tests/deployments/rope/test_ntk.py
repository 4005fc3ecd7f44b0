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
    class rotates with the pool's base at every position up to max_model_len
    (no request-specific rows loaded), exactly as a plain rotary cache for
    that base would, and per-request rows switch a token to its own base."""
    import numpy as np
    from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config
    from vllm.model_executor.custom_op import op_registry_oot
    from vllm.model_executor.layers.rotary_embedding import (
        DynamicNTKScalingRotaryEmbedding,
        RotaryEmbedding,
    )

    from deployments.rope import plugin
    from deployments.rope.rotary import RequestDynamicNTKRotaryEmbedding

    plugin.register()
    plugin.register()
    assert op_registry_oot["DynamicNTKScalingRotaryEmbedding"] is RequestDynamicNTKRotaryEmbedding

    model = demo_models["internlm2"]
    theta, factor, native = 5e7, 2.5, model.native

    def rotated(rope, positions):
        q = torch.randn(len(positions), 64, generator=torch.Generator().manual_seed(0))
        k = q.clone()
        return rope.forward_native(torch.tensor(positions), q, k)[0]

    cases = [
        # (max_model_len, hf_overrides, expected base length)
        (native, {}, native),  # inside the window: identical to stock
        (10_240, {}, 10_240),  # no pool hint: base for max_model_len
        (10_240, {"dynamic_ntk_seq_len": 6000}, 6000),
    ]
    positions = [0, 1, native - 1, native, 10_239]
    for max_model_len, overrides, seq_len in cases:
        mc = ModelConfig(model=str(model.path), trust_remote_code=True,
                         max_model_len=max_model_len, hf_overrides=overrides)
        with set_current_vllm_config(VllmConfig(model_config=mc)):
            rope = DynamicNTKScalingRotaryEmbedding(64, 64, native, native, theta, True,
                                                    factor, torch.float32)
            plain = RotaryEmbedding(64, 64, 10_240, dynamic_ntk_base(theta, factor, native, seq_len, 64),
                                    True, torch.float32)
            assert type(rope) is RequestDynamicNTKRotaryEmbedding
            assert rope.ntk_seq_len == seq_len
            assert rope.cos_sin_cache.shape[0] == 1  # no cache per base
            torch.testing.assert_close(rotated(rope, positions), rotated(plain, positions), rtol=0, atol=0)
            if overrides:
                # Requests of 3 and 2 tokens: the first with its own L, the second without.
                own = RotaryEmbedding(64, 64, 10_240, dynamic_ntk_base(theta, factor, native, 7000, 64),
                                      True, torch.float32)
                rope.load_batch([7000, None], np.array([3, 2]))
                both = rotated(rope, positions)
                torch.testing.assert_close(both[:3], rotated(own, positions)[:3], rtol=0, atol=0)
                torch.testing.assert_close(both[3:], rotated(plain, positions)[3:], rtol=0, atol=0)


def test_runner_hook_wraps_vllms_runners_and_refuses_other_internals():
    """register() wraps the V1 runner (the CPU engine's base class) and the V2
    runner; a runner whose input preparation has other parameters is refused
    rather than silently serving the pool's base."""
    from vllm.v1.worker.cpu_model_runner import CPUModelRunner
    from vllm.v1.worker.gpu.model_runner import GPUModelRunner as V2Runner
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner as V1Runner

    from deployments.rope import plugin, runner_hook

    plugin.register()
    wrapped = [(V1Runner, "execute_model"), (V1Runner, "_prepare_inputs"), (V1Runner, "load_model"),
               (CPUModelRunner, "load_model"), (V2Runner, "execute_model"), (V2Runner, "prepare_inputs"),
               (V2Runner, "load_model")]
    for cls, name in wrapped:
        assert getattr(cls.__dict__[name], "__longctx_rope_wrapped__", False), (cls, name)
    other = type("OtherRunner", (), {"_prepare_inputs": lambda self, scheduler_output, batch: None})
    with pytest.raises(RuntimeError, match="_prepare_inputs"):
        runner_hook._require(other, "_prepare_inputs", ("self", "scheduler_output", "num_scheduled_tokens"))


@pytest.mark.parametrize("extra_args, expected", [
    (None, None), ({}, None), ({"other": 1}, None),
    ({"longctx_rope_seq_len": 9000}, 9000),
    # Unusable values fall back to the pool's base: an engine must not fail a request step.
    ({"longctx_rope_seq_len": "9000"}, None), ({"longctx_rope_seq_len": 0}, None),
    ({"longctx_rope_seq_len": True}, None),
])
def test_seq_len_from_extra_args(extra_args, expected):
    from deployments.rope.runner_hook import seq_len_from_extra_args

    assert seq_len_from_extra_args(extra_args) == expected


def test_v2_runner_of_another_layout_is_named(monkeypatch):
    """vLLM 0.26's V2 runner prepares inputs from a BatchExecutionDescriptor (seen on the GPU
    test machine: every engine failed at start); v2_runner_problem names it, so the engines are
    sent to the V1 runner (deployments/engines.py), and is quiet for the layout the hook follows."""
    from deployments.rope import runner_hook

    class V026Runner:
        def execute_model(self, scheduler_output, intermediate_tensors=None): ...
        def prepare_inputs(self, scheduler_output, batch_desc): ...

    class V029Runner:
        def execute_model(self, scheduler_output, intermediate_tensors=None): ...
        def prepare_inputs(self, scheduler_output, batch_req_state): ...

    for runner, problem in ((V026Runner, "batch_desc"), (V029Runner, None)):
        monkeypatch.setattr(runner_hook, "_import", lambda module, name, runner=runner: runner)
        found = runner_hook.v2_runner_problem()
        assert (found is None) if problem is None else (problem in found), found
    monkeypatch.setattr(runner_hook, "_import", lambda module, name: None)  # a vLLM without a V2 runner
    assert runner_hook.v2_runner_problem() is None
