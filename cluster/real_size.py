"""Random checkpoints with the real InternLM dimensions, for GPU validation.

The demo (cluster/demo.py) shrinks the architectures so they run on CPUs.
On a GPU, what must be measured (prefill time, KV capacity, RoPE past the
native window at real head dims) depends on the real shapes, while no test
machine can download the weights. So this writes checkpoints with the
published config.json dimensions (layers, hidden, heads, KV heads, vocab,
rope settings), random bf16 weights of realistic scale, and the demo's
offline tokenizer (its ids fill the low rows of the real-size vocabulary).

Weights are drawn on the GPU when there is one (a 7.7B-parameter checkpoint
takes seconds there, minutes on a CPU). ``layers`` writes a reduced-depth
copy of the same width: cheap to check against a plain-PyTorch reference.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

from cluster.demo import (
    ASSETS,
    EOS,
    IM_END,
    TinyModelSpec,
    _config_json,
    _tokenizer_files,
    build_tokenizer,
    iter_weights,
)

# Published config.json values (FACTS.md; huggingface.co/internlm/...).
INTERNLM25_7B_1M = TinyModelSpec(
    name="internlm2_5-7b-chat-1m-random",
    architecture="InternLM2ForCausalLM",
    model_type="internlm2",
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=262144,
    rope_theta=50_000_000.0,
    rope_scaling={"type": "dynamic", "factor": 2.5},
    vocab_size=92544,
    seed=25,
    extra_config={"bias": False},
)
INTERNLM3_8B = TinyModelSpec(
    name="internlm3-8b-instruct-random",
    architecture="InternLM3ForCausalLM",
    model_type="internlm3",
    hidden_size=4096,
    intermediate_size=10240,
    num_hidden_layers=48,
    num_attention_heads=32,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=50_000_000.0,
    rope_scaling={"rope_type": "dynamic", "factor": 6.0},
    vocab_size=128512,
    seed=3,
    extra_config={"bias": False, "qkv_bias": False},
)
REAL_SIZE_MODELS = {"internlm2_5-7b-chat-1m": INTERNLM25_7B_1M, "internlm3-8b-instruct": INTERNLM3_8B}
# The tokenizer is trained offline on local text: a demo-sized vocabulary is
# enough for prompts; the weight matrices keep the real row counts.
TOKENIZER_VOCAB = 8192
# The demo's q/k std (0.08 at width 512) scaled to keep the same attention
# logit variance at the real width: attention stays position-sensitive.
_DEMO_QK_STD, _DEMO_WIDTH = 0.08, 512


def spec_for(model: str, layers: int | None = None) -> TinyModelSpec:
    spec = REAL_SIZE_MODELS[model]
    qk_std = _DEMO_QK_STD * math.sqrt(_DEMO_WIDTH / spec.hidden_size)
    spec = replace(spec, qk_init_std=qk_std)
    if layers is not None and layers != spec.num_hidden_layers:
        spec = replace(spec, name=f"{spec.name}-{layers}l", num_hidden_layers=layers)
    return spec


def _weights(spec: TinyModelSpec, device: str):
    """(name, bf16 tensor on the CPU), one at a time, to bound peak memory."""
    import torch

    gen = torch.Generator(device=device).manual_seed(spec.seed)

    def normal(*shape, std=spec.init_std):
        t = torch.randn(*shape, generator=gen, device=device, dtype=torch.float32) * std
        return t.to(torch.bfloat16).cpu().contiguous()

    def ones(n):
        return torch.ones(n, dtype=torch.bfloat16)

    return iter_weights(spec, spec.vocab_size, normal, ones)


def build_real_size(model: str, root: Path, *, layers: int | None = None, device: str | None = None,
                    shard_gib: float = 4.0) -> Path:
    """Write one random real-width checkpoint under ``root``; idempotent."""
    import torch
    from safetensors.torch import save_file

    spec = spec_for(model, layers)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = root / spec.name
    stamp = out / ".demo-build"
    if stamp.exists() and stamp.read_text() == spec.fingerprint():
        return out
    tmp = root / f".{spec.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _tokenizer_files(tmp, build_tokenizer(TOKENIZER_VOCAB), spec)
    shutil.copy(ASSETS / f"configuration_{spec.model_type}.py", tmp)
    config = _config_json(spec, spec.vocab_size)
    config["torch_dtype"] = "bfloat16"
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    (tmp / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": [EOS, IM_END]}, indent=2))
    # Shards with an index, as published checkpoints are: bounded host memory.
    shard, shard_bytes, weight_map, shards = {}, 0, {}, []

    def flush():
        nonlocal shard, shard_bytes
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
            shards.append(name)
            shard, shard_bytes = {}, 0

    total = 0
    for name, tensor in _weights(spec, device):
        shard[name] = tensor
        shard_bytes += tensor.numel() * 2
        total += tensor.numel() * 2
        if shard_bytes >= shard_gib * 2**30:
            flush()
    flush()
    if device.startswith("cuda"):
        # The draws' blocks stay in torch's cache otherwise: a process that
        # builds a checkpoint and then starts engines on the same GPU (the GPU
        # validation) would hold GiBs outside every engine's memory share.
        torch.cuda.empty_cache()
    (tmp / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    stamp_tmp = tmp / ".demo-build"
    stamp_tmp.write_text(spec.fingerprint())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
