"""What the serving core needs to configure a pool's engines for correct long context.

The pool's rotary base: the dynamic NTK base for the pool's band maximum
(the longest prompt the router sends there), for every request that does not
carry a length of its own (``ROPE_SEQ_LEN_XARG``; docs/long-context.md,
"Choosing the base per request").

The base itself is computed inside the engine by the ``internlm_rope`` vLLM
plugin (deployments/rope/plugin.py), because only the engine knows
``rope_theta`` and the rotary dimension; the pool passes it the sequence
length to compute the base for through ``hf_overrides``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from deployments.rope.ntk import is_dynamic_ntk, rope_type

# hf_config attribute the plugin reads: the sequence length whose dynamic NTK
# base the engine uses for every request. Plain int, so it survives JSON/YAML
# serve configs (a callable hf_overrides would not).
NTK_SEQ_LEN_ATTR = "dynamic_ntk_seq_len"

# Context lengths a model's publisher validated beyond vLLM's native x factor,
# keyed by (rope type, factor, native window). InternLM2.5-7B-Chat-1M ships
# dynamic x2.5 on a 262,144 window and is served at 1,048,576 tokens
# (LMDeploy TurboMind, session_len 1048576); vLLM's derived 655,360 would
# refuse the model's headline length. Dynamic NTK has no hard limit, so this
# table is about what has been validated, not about what the formula allows.
_PUBLISHED_CONTEXT = MappingProxyType({
    ("dynamic", 2.5, 262_144): 1_048_576,
})


def max_supported_len(native_context: int, rope_scaling: dict | None, validated_len: int | None = None) -> int:
    """Largest ``max_model_len`` the model plus this fix supports.

    ``validated_len`` is a length the operator vouches the model was
    validated for (a profile's ``context_limit``); dynamic NTK takes it as
    the publisher's figure, since the formula itself has no hard limit.

    * no rope scaling: the native window;
    * dynamic NTK (fixed by the plugin): ``native x factor`` (what vLLM and
      the model config advertise), or the publisher's validated length where
      that is larger (InternLM2.5-1M: 1,048,576);
    * other scaling types (linear, yarn, llama3, ...) are vLLM's own business
      and correct there: ``native x factor`` as vLLM derives it.
    """
    if native_context <= 0:
        raise ValueError(f"native_context must be positive, got {native_context}")
    kind = rope_type(rope_scaling)
    if kind is None or kind == "default" or rope_scaling is None:
        return native_context
    factor = rope_scaling.get("factor")
    if factor is None or float(factor) < 1.0:
        return native_context
    derived = int(native_context * float(factor))
    published = _PUBLISHED_CONTEXT.get((kind, float(factor), native_context), 0)
    if kind == "dynamic":
        published = max(published, validated_len or 0)
    return max(derived, published)


def engine_kwargs_for_pool(
    *,
    native_context: int,
    rope_scaling: dict | None,
    max_model_len: int,
    band_max_tokens: int,
    validated_len: int | None = None,
) -> dict[str, Any]:
    """Extra vLLM engine kwargs for one pool; ``{}`` when none are needed.

    Raises ValueError when ``max_model_len`` exceeds ``max_supported_len``.
    For dynamic NTK models whose pool reaches past the native window, returns
    ``{"hf_overrides": {"dynamic_ntk_seq_len": L, ...}}`` where
    ``L = clamp(band_max_tokens, native_context, max_model_len)``: every
    request in the pool is rotated with the model's own dynamic NTK base for
    a sequence of L tokens (the unscaled base when L is the native window).
    ``model_max_length`` is added when ``max_model_len`` is past vLLM's own
    ``native x factor`` limit so vLLM accepts it without
    VLLM_ALLOW_LONG_MAX_MODEL_LEN. Merge into any existing ``hf_overrides``.
    """
    limit = max_supported_len(native_context, rope_scaling, validated_len)
    if max_model_len > limit:
        raise ValueError(
            f"max_model_len {max_model_len} exceeds what this model supports: "
            f"native window {native_context} with rope_scaling {rope_scaling} "
            f"allows at most {limit} tokens. Past that, rotary positions are "
            "outside anything the model was trained or validated for; lower "
            "max_model_len or the pool band."
        )
    if band_max_tokens <= 0:
        raise ValueError(f"band_max_tokens must be positive, got {band_max_tokens}")
    if not is_dynamic_ntk(rope_scaling) or max_model_len <= native_context:
        # Inside the native window stock vLLM is already correct.
        return {}
    seq_len = min(max(band_max_tokens, native_context), max_model_len)
    overrides: dict[str, Any] = {NTK_SEQ_LEN_ATTR: int(seq_len)}
    if max_model_len > native_context * float(rope_scaling["factor"]):
        overrides["model_max_length"] = int(max_model_len)
    return {"hf_overrides": overrides}

