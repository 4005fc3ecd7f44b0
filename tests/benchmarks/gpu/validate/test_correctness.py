"""The correctness stage compares each prompt at the base its engine really used (the ingress's x-rope-seq-len)."""

from __future__ import annotations

import json

from benchmarks.gpu.validate.correctness import base_for_seq_len, pool_base
from cluster.config import load_config, profile_path
from deployments.rope.ntk import dynamic_ntk_base


def test_the_base_follows_the_length_the_ingress_sent(demo_models, monkeypatch):
    monkeypatch.setenv("LONGCTX_DEMO_MODELS", str(demo_models))
    config = load_config(str(profile_path("cpu-demo")))
    pool = config.pool("il25-long")
    model = config.models[pool.model]
    hf = json.loads((demo_models / "tiny-internlm2_5-chat-1m" / "config.json").read_text())
    theta = float(hf["rope_theta"])
    head_dim = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    native = model.native_context

    assert base_for_seq_len(config, pool, None) == pool_base(config, pool)
    assert base_for_seq_len(config, pool, native) == theta
    own = native + 1000
    expected = dynamic_ntk_base(theta, float(model.rope_scaling["factor"]), native, own, head_dim)
    assert base_for_seq_len(config, pool, own) == expected
    # A prompt at the low end of the band is rotated with less than the pool-wide base.
    assert theta < base_for_seq_len(config, pool, own) < base_for_seq_len(config, pool, pool.max_tokens)
