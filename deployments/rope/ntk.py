"""Dynamic NTK rope math shared by the engine plugin, the pool helpers and the reference.

The semantics are those of the models' own runtimes: Hugging Face
``_compute_dynamic_ntk_parameters`` and LMDeploy TurboMind. For a sequence of
``seq_len`` tokens and a model trained on ``native`` positions::

    base(seq_len) = theta * (factor * max(seq_len, native) / native - (factor - 1)) ** (d / (d - 2))

so the base is ``theta`` inside the native window and grows past it. This
module is plain Python (no torch, no vLLM) so the serving core can import it
cheaply when it validates pool configs.
"""

from __future__ import annotations

from typing import Any


def rope_type(rope_scaling: dict[str, Any] | None) -> str | None:
    """The scaling type, accepting both the legacy ``type`` key and ``rope_type``."""
    if not rope_scaling:
        return None
    return rope_scaling.get("rope_type") or rope_scaling.get("type")


def is_dynamic_ntk(rope_scaling: dict[str, Any] | None) -> bool:
    """True for factor-based dynamic NTK (InternLM2.5, InternLM3).

    The ``alpha`` flavour of "dynamic" is a different formula that vLLM builds
    with another class; it is left alone.
    """
    return (
        rope_type(rope_scaling) == "dynamic"
        and rope_scaling is not None
        and rope_scaling.get("factor") is not None
        and "alpha" not in rope_scaling
    )


def ntk_scale(factor: float, native: int | float, seq_len: int | float) -> float:
    """The multiplier inside the power; exactly 1 at or below the native window."""
    seq_len = max(seq_len, native)
    return factor * seq_len / native - (factor - 1)


def dynamic_ntk_base(
    theta: float, factor: float, native: int | float, seq_len: int | float, rotary_dim: int
) -> float:
    """The rotary base dynamic NTK uses for a sequence of ``seq_len`` tokens."""
    return theta * ntk_scale(factor, native, seq_len) ** (rotary_dim / (rotary_dim - 2))
