"""A dynamic NTK rotary embedding that is correct past the native window.

Stock vLLM (0.29) builds ``DynamicNTKScalingRotaryEmbedding`` with a cos/sin
cache of exactly ``max_position_embeddings`` rows and the base computed for
that same length, i.e. the unscaled base. Positions past the native window
index outside the cache: NaN or silent garbage depending on what memory
follows it.

This subclass sizes the cache to the engine's ``max_model_len`` and computes
the base the model's own runtimes (HF, LMDeploy TurboMind) use for a
sequence of ``L`` tokens, where ``L`` is the pool's band maximum passed as
``hf_overrides={"dynamic_ntk_seq_len": L}`` (see pool.py), or the engine's
``max_model_len`` when no pool passed one. With neither a hint nor a
``max_model_len`` past the window it is numerically identical to stock.
"""

from __future__ import annotations

import logging

import torch
from vllm.model_executor.layers.rotary_embedding.dynamic_ntk_scaling_rope import (
    DynamicNTKScalingRotaryEmbedding,
)

from deployments.rope.ntk import dynamic_ntk_base
from deployments.rope.pool import NTK_SEQ_LEN_ATTR

logger = logging.getLogger(__name__)


def _engine_lengths(max_position: int) -> tuple[int, int | None]:
    """(cos/sin cache length, pool hint) from the engine being built.

    Model construction runs inside vLLM's ``set_current_vllm_config``; outside
    it (a bare instantiation) there is no engine, so stock sizing applies.
    """
    from vllm.config import get_current_vllm_config_or_none

    vllm_config = get_current_vllm_config_or_none()
    model_config = getattr(vllm_config, "model_config", None)
    if model_config is None:
        return max_position, None
    hint = None
    for cfg in (model_config.hf_text_config, model_config.hf_config):
        hint = getattr(cfg, NTK_SEQ_LEN_ATTR, None)
        if hint is not None:
            break
    return max(max_position, int(model_config.max_model_len)), (
        int(hint) if hint is not None else None
    )


class PoolDynamicNTKRotaryEmbedding(DynamicNTKScalingRotaryEmbedding):
    """Dynamic NTK with a cache covering ``max_model_len`` and a per-pool base."""

    def __init__(
        self,
        head_size: int,
        rotary_dim: int,
        max_position_embeddings: int,
        max_trained_positions: int,
        base: float,
        is_neox_style: bool,
        scaling_factor: float,
        dtype: torch.dtype,
    ) -> None:
        cache_len, hint = _engine_lengths(max_position_embeddings)
        # Without a hint the base is the one for the longest sequence the
        # engine accepts; stock uses max_position_embeddings, which is the
        # same value whenever the engine stays inside the window.
        self.ntk_seq_len = hint if hint is not None else cache_len
        super().__init__(
            head_size,
            rotary_dim,
            cache_len,
            max_trained_positions,
            base,
            is_neox_style,
            scaling_factor,
            dtype,
        )
        if cache_len > max_trained_positions:
            logger.info(
                "dynamic NTK rope: native %d, cache %d, base %.6g computed for %d tokens",
                max_trained_positions,
                cache_len,
                self.ntk_base,
                self.ntk_seq_len,
            )

    @property
    def ntk_base(self) -> float:
        return dynamic_ntk_base(
            self.base,
            self.scaling_factor,
            self.max_trained_positions,
            self.ntk_seq_len,
            self.rotary_dim,
        )

    def _compute_cos_sin_cache(self) -> torch.Tensor:
        # float32 like HF's inv_freq and position products, so the engine
        # matches the model's reference numerics rather than improving on them.
        inv_freq = self._compute_inv_freq(self.ntk_base)
        t = torch.arange(self.max_position_embeddings, dtype=torch.float)
        freqs = torch.einsum("i,j -> ij", t, inv_freq)
        return torch.cat((freqs.cos(), freqs.sin()), dim=-1)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", native={self.max_trained_positions}, ntk_seq_len={self.ntk_seq_len}"
        )
