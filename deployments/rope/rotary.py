"""A dynamic NTK rotary embedding with one base per request.

Stock vLLM (0.29) builds ``DynamicNTKScalingRotaryEmbedding`` with a cos/sin
cache of exactly ``max_position_embeddings`` rows and the unscaled base:
positions past the native window index outside the cache (NaN or garbage).

This subclass keeps no cos/sin cache. Each forward computes every token's
cos/sin from its position and the inverse frequencies of its request's base,
in float32 as Hugging Face does (``position.float() * inv_freq``), then
applies them with vLLM's own rotary kernel by passing each token's row index
as its "position". A request's base is the dynamic NTK base for a sequence
of ``L`` tokens (the models' runtimes' semantics), where ``L`` is:

* the request's own ``vllm_xargs`` ``ROPE_SEQ_LEN_XARG`` value, fed in each
  step by the model-runner hook (runner_hook.py) through ``load_batch``;
* otherwise the pool's ``hf_overrides={"dynamic_ntk_seq_len": L}`` (pool.py),
  or the engine's ``max_model_len`` when no pool passed one (table row 0).

Memory, allocated once per rotary module (vLLM's get_rope shares one module
across layers): a table of (max_num_seqs + 1) x rotary_dim/2 float32 inverse
frequencies, and two int64 vectors of max_num_batched_tokens (each token's
table row, and 0..n-1). Per forward, transiently: num_tokens x rotary_dim
cos/sin values. The replaced design's full cache was max_model_len x
rotary_dim per base (InternLM2.5-1M in bf16: 256 MiB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from vllm.model_executor.layers.rotary_embedding.dynamic_ntk_scaling_rope import (
    DynamicNTKScalingRotaryEmbedding,
)

from deployments.rope.ntk import dynamic_ntk_base
from deployments.rope.pool import NTK_SEQ_LEN_ATTR

logger = logging.getLogger(__name__)

# Row 0 of the inverse-frequency table: the pool's base, for tokens of
# requests without their own L and for padding tokens.
POOL_ROW = 0
# Inverse-frequency tables kept per module for reuse across steps; a request
# keeps its L for its lifetime, so a batch needs at most max_num_seqs of them.
_INV_FREQ_MEMO_MAX = 4096

if not isinstance(getattr(DynamicNTKScalingRotaryEmbedding, "forward_static", None), type(lambda: 0)):
    # forward_native below applies the rotation with vLLM's own static helper.
    raise ImportError("vLLM's RotaryEmbedding.forward_static is missing; deployments.rope needs updating")


def _engine_sizes(max_position: int) -> tuple[int, int | None, int, int]:
    """(longest sequence the engine accepts, pool hint, max_num_seqs, max_num_batched_tokens).

    Model construction runs inside vLLM's ``set_current_vllm_config``; outside
    it (a bare instantiation) there is no engine: stock lengths, small tables.
    """
    from vllm.config import get_current_vllm_config_or_none

    vllm_config = get_current_vllm_config_or_none()
    model_config = getattr(vllm_config, "model_config", None)
    if model_config is None:
        return max_position, None, 1, max_position
    hint = None
    for cfg in (model_config.hf_text_config, model_config.hf_config):
        hint = getattr(cfg, NTK_SEQ_LEN_ATTR, None)
        if hint is not None:
            break
    scheduler = vllm_config.scheduler_config
    return (
        max(max_position, int(model_config.max_model_len)),
        int(hint) if hint is not None else None,
        int(scheduler.max_num_seqs),
        int(scheduler.max_num_batched_tokens),
    )


class RequestDynamicNTKRotaryEmbedding(DynamicNTKScalingRotaryEmbedding):
    """Dynamic NTK with each token's cos/sin computed for its request's base."""

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
        max_len, hint, max_num_seqs, max_num_tokens = _engine_sizes(max_position_embeddings)
        # Without a hint the pool base is the one for the longest sequence the
        # engine accepts; stock uses max_position_embeddings, the same value
        # whenever the engine stays inside the window.
        self.ntk_seq_len = hint if hint is not None else max_len
        super().__init__(
            head_size,
            rotary_dim,
            max_len,
            max_trained_positions,
            base,
            is_neox_style,
            scaling_factor,
            dtype,
        )
        self._inv_freq_memo: dict[int, torch.Tensor] = {}
        # Static addresses (filled in place each step) so CUDA graphs
        # captured over this module stay valid. Plain attributes, not
        # buffers: nothing may re-allocate them behind the runner hook.
        self.inv_freq_rows = torch.empty(max_num_seqs + 1, rotary_dim // 2, dtype=torch.float32)
        self.inv_freq_rows[:] = self.inv_freq_for(self.ntk_seq_len).to(self.inv_freq_rows.device)
        self.token_rows = torch.zeros(max_num_tokens, dtype=torch.long)
        self.token_index = torch.arange(max_num_tokens, dtype=torch.long)
        if max_len > max_trained_positions:
            logger.info(
                "dynamic NTK rope: native %d, max_model_len %d, pool base %.6g (for %d tokens); "
                "per-request bases for %d sequences",
                max_trained_positions,
                max_len,
                self.ntk_base,
                self.ntk_seq_len,
                max_num_seqs,
            )

    @property
    def ntk_base(self) -> float:
        """The pool's base (requests that carry no L of their own)."""
        return self.base_for(self.ntk_seq_len)

    def base_for(self, seq_len: int) -> float:
        return dynamic_ntk_base(
            self.base, self.scaling_factor, self.max_trained_positions, seq_len, self.rotary_dim
        )

    def inv_freq_for(self, seq_len: int) -> torch.Tensor:
        """HF's inverse frequencies for a sequence of ``seq_len`` tokens, on CPU
        in float32 (computed on a GPU they differ in the last bits)."""
        seq_len = max(int(seq_len), self.max_trained_positions)
        memo = self._inv_freq_memo.get(seq_len)
        if memo is None:
            exponents = torch.arange(0, self.rotary_dim, 2, dtype=torch.int64, device="cpu").float()
            memo = 1.0 / (self.base_for(seq_len) ** (exponents / self.rotary_dim))
            if len(self._inv_freq_memo) >= _INV_FREQ_MEMO_MAX:
                self._inv_freq_memo.clear()
            self._inv_freq_memo[seq_len] = memo
        return memo

    def _compute_cos_sin_cache(self) -> torch.Tensor:
        # The base class stores this as cos_sin_cache; forward never reads it
        # (per-token cos/sin instead), so one row stands in for the
        # max_model_len-row cache.
        return torch.zeros(1, self.rotary_dim, dtype=torch.float32)

    # -- per step: called by the model-runner hook before the forward ---------
    def load_batch(self, seq_lens: Sequence[int | None], num_scheduled_tokens: np.ndarray) -> None:
        """Point every scheduled token at its request's base.

        ``seq_lens[i]`` is the L of the batch's i-th request (None: the pool's
        base); ``num_scheduled_tokens[i]`` its token count this step, in the
        order the runner lays tokens out.
        """
        rows = np.zeros(len(seq_lens), dtype=np.int64)
        own = [i for i, seq_len in enumerate(seq_lens) if seq_len is not None]
        if own:
            rows[own] = np.asarray(own, dtype=np.int64) + 1
            table = torch.stack([self.inv_freq_for(seq_lens[i]) for i in own])
            if len(own) == own[-1] + 1:
                self._to_device(table, self.inv_freq_rows[1 : len(own) + 1])
            else:
                index = torch.as_tensor(own, dtype=torch.long) + 1
                self.inv_freq_rows.index_copy_(0, index.to(self.inv_freq_rows.device), table.to(self.inv_freq_rows.device))
        token_rows = np.repeat(rows, num_scheduled_tokens)
        self._to_device(torch.from_numpy(token_rows), self.token_rows[: len(token_rows)])

    @staticmethod
    def _to_device(src: torch.Tensor, dst: torch.Tensor) -> None:
        if dst.device.type == "cpu":
            dst.copy_(src)
        else:
            # As vLLM's runner does: pinned source, asynchronous copy ordered
            # before the forward on the same stream (the caching host
            # allocator keeps the pinned block until the copy has run).
            dst.copy_(src.pin_memory(), non_blocking=True)

    # -- forward ------------------------------------------------------------
    def _cos_sin_per_token(
        self, positions: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(row index per token, one cos/sin row per token in query's dtype)."""
        positions = positions.flatten()
        n = positions.shape[0]
        inv_freq = self.inv_freq_rows.index_select(0, self.token_rows[:n])
        freqs = positions.to(torch.float32)[:, None] * inv_freq
        cos_sin = torch.cat((freqs.cos(), freqs.sin()), dim=-1).to(query.dtype)
        return self.token_index[:n], cos_sin

    def forward_native(self, positions, query, key=None):
        index, cos_sin = self._cos_sin_per_token(positions, query)
        return self.forward_static(
            index, query, key, self.head_size, self.rotary_dim, cos_sin, self.is_neox_style
        )

    def _forward_kernel(self, positions, query, key=None):
        from vllm import _custom_ops as ops

        index, cos_sin = self._cos_sin_per_token(positions, query)
        # In place on query and key, as the stock forward_cuda/forward_cpu.
        ops.rotary_embedding(index, query, key, self.head_size, cos_sin, self.is_neox_style)
        return query, key

    forward_cuda = _forward_kernel
    forward_cpu = _forward_kernel
    forward_hip = _forward_kernel

    def forward_xpu(self, positions, query, key=None):
        if key is None:
            return self.forward_native(positions, query, key)
        return self._forward_kernel(positions, query, key)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", native={self.max_trained_positions}, pool_ntk_seq_len={self.ntk_seq_len}"
            + f", per_request_rows={self.inv_freq_rows.shape[0] - 1}"
        )
