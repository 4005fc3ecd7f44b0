"""The model side of a plan: transformer dimensions, dtypes and valid tensor parallelism."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from pydantic import Field

from cluster.config import ModelConfig
from cluster.planner.base import FrozenModel, PlanError


class Architecture(FrozenModel):
    """The dimensions of a decoder-only transformer that memory depends on."""

    name: str = Field(description="config.json `architectures[0]`.")
    hidden_size: int = Field(gt=0, description="Model width.")
    intermediate_size: int = Field(gt=0, description="MLP width (gate/up/down, SwiGLU).")
    num_layers: int = Field(gt=0, description="Decoder layers.")
    num_heads: int = Field(gt=0, description="Query heads.")
    num_kv_heads: int = Field(gt=0, description="Key/value heads (GQA).")
    head_dim: int = Field(gt=0, description="Per-head width.")
    vocab_size: int = Field(gt=0, description="Vocabulary (embedding and LM head rows).")
    tie_word_embeddings: bool = Field(default=False, description="LM head shares the embedding.")
    dtype_bytes: int = Field(default=2, description="Bytes per weight of the checkpoint (bf16: 2).")

    @property
    def params(self) -> int:
        """Parameter count of the llama-style layout both InternLM generations use."""
        attention = self.hidden_size * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        attention += self.num_heads * self.head_dim * self.hidden_size
        mlp = 3 * self.hidden_size * self.intermediate_size
        norms = 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * (attention + mlp + norms) + embeddings + self.hidden_size

    def kv_heads_per_rank(self, tp: int) -> int:
        return max(1, self.num_kv_heads // tp)

    def kv_bytes_per_token(self, kv_heads: int, kv_bytes: int) -> int:
        return 2 * self.num_layers * kv_heads * self.head_dim * kv_bytes


# The published checkpoints' config.json (internlm/internlm2_5-7b-chat-1m and
# internlm/internlm3-8b-instruct on the Hugging Face hub); used when a profile
# names weights that are not on this machine.
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(
    {
        "InternLM2ForCausalLM": Architecture(
            name="InternLM2ForCausalLM", hidden_size=4096, intermediate_size=14336,
            num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128, vocab_size=92544,
        ),
        "InternLM3ForCausalLM": Architecture(
            name="InternLM3ForCausalLM", hidden_size=4096, intermediate_size=10240,
            num_layers=48, num_heads=32, num_kv_heads=2, head_dim=128, vocab_size=128512,
        ),
    }
)

_DTYPE_BYTES = MappingProxyType(
    {
        "float32": 4, "float": 4, "fp32": 4,
        "bfloat16": 2, "float16": 2, "half": 2, "bf16": 2, "fp16": 2,
        "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
    }
)



def architecture_from_hf_config(hf: Mapping) -> Architecture:
    """Dimensions from a checkpoint's config.json (both InternLM generations)."""
    names = hf.get("architectures") or []
    if not names:
        raise PlanError("config.json has no `architectures`")
    heads = int(hf["num_attention_heads"])
    hidden = int(hf["hidden_size"])
    return Architecture(
        name=names[0],
        hidden_size=hidden,
        intermediate_size=int(hf["intermediate_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads),
        head_dim=int(hf.get("head_dim") or hidden // heads),
        vocab_size=int(hf["vocab_size"]),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        dtype_bytes=_DTYPE_BYTES.get(str(hf.get("torch_dtype", "bfloat16")), 2),
    )


def resolve_architecture(model_name: str, model: ModelConfig) -> Architecture:
    """config.json of the weights when present, else the profile's hint."""
    config_json = Path(model.path) / "config.json"
    if config_json.is_file():
        return architecture_from_hf_config(json.loads(config_json.read_text()))
    if model.architecture is None:
        raise PlanError(
            f"model {model_name}: {config_json} does not exist and the profile sets no "
            f"`architecture`; set models.{model_name}.architecture to one of "
            f"{sorted(ARCHITECTURES)}"
        )
    try:
        return ARCHITECTURES[model.architecture]
    except KeyError:
        raise PlanError(
            f"model {model_name}: unknown architecture {model.architecture!r}; the planner "
            f"knows {sorted(ARCHITECTURES)} (or put the weights' config.json at {model.path})"
        ) from None


def element_bytes(name: str, fallback: int) -> int:
    """Bytes per element of a vLLM dtype name; ``auto`` keeps ``fallback`` (the checkpoint's)."""
    if name == "auto":
        return fallback
    try:
        return _DTYPE_BYTES[name]
    except KeyError:
        raise PlanError(f"unknown dtype {name!r}") from None


def valid_tensor_parallel(arch: Architecture, tp: int) -> str | None:
    """vLLM's own divisibility rules; returns why ``tp`` is invalid, or None."""
    if arch.num_heads % tp:
        return f"tensor_parallel_size {tp} does not divide {arch.num_heads} attention heads"
    if arch.num_kv_heads % tp and tp % arch.num_kv_heads:
        return (
            f"tensor_parallel_size {tp} and {arch.num_kv_heads} KV heads: neither divides "
            "the other"
        )
    return None
