"""The rotary base each request is rotated with, chosen with its pool (issue 28).

Engines of a pool past the model's native window rotate a request with the
dynamic NTK base for a sequence of ``L`` tokens, ``L`` sent with the request
(vLLM's ``vllm_xargs``, key ``deployments.rope.ROPE_SEQ_LEN_XARG``). The
pool's ``rope_base.mode`` decides ``L`` for a prompt of ``P`` tokens:

* every mode: ``P`` inside the native window ``N`` -> ``L = N``, the stock
  base (also when only ``max_tokens`` pushed the request into a long pool);
* ``pool``: ``L`` = the band maximum (clamped to [N, max_model_len]), one base
  for the whole pool;
* ``request``: ``L = P``, the base the models' own runtimes use;
* ``bucket``: ``L`` = the top of P's bucket; bucket tops start at ``N`` and
  their bases are ``bucket_ratio`` apart, so a prompt's base is at most
  ``bucket_ratio`` above its own.

A document's questions all use one ``L`` (its prefix plus the question
budget) in the ``request`` and ``bucket`` modes, so they share its cached
prefix. KV rotated with one base must never serve a request rotated with
another: the request's vLLM ``cache_salt`` names ``L`` (RopeChoice.cache_salt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cluster.config import ClusterConfig, ModelConfig, PoolConfig
from deployments.rope import ROPE_SEQ_LEN_XARG
from deployments.rope.ntk import is_dynamic_ntk, ntk_scale

# Prefix of the cache salt the ingress sets; a client's own salt follows it.
SALT_PREFIX = "longctx-rope-"


@dataclass(frozen=True)
class RopeChoice:
    """The rotary length of one request, and how far its base is from its own."""

    seq_len: int
    """L: the engine rotates the request with the dynamic NTK base for L tokens."""
    own_seq_len: int
    """The prompt's own length, or the native window if shorter (its runtime's L)."""
    base_ratio: float | None
    """base(L) / base(own_seq_len): 1 is exact; None when the rotary dimension is unknown."""

    def xargs(self) -> dict[str, int]:
        return {ROPE_SEQ_LEN_XARG: self.seq_len}

    def cache_salt(self, client_salt: str | None) -> str:
        """vLLM's cache_salt for the request: L, then the client's salt if any.

        Blocks hash with the salt, so KV computed for one L is never read by a
        request of another L, and a client's salt still isolates its prefixes.
        """
        own = f"{SALT_PREFIX}{self.seq_len}"
        return own if client_salt is None else f"{own}:{client_salt}"


class RopeBasePolicy:
    """Chooses L for a request once its pool is known."""

    def __init__(self, cluster: ClusterConfig):
        self._cluster = cluster

    def choose(self, pool: PoolConfig, prompt_tokens: int, *, document_seq_len: int | None = None) -> RopeChoice | None:
        """L for a prompt of ``prompt_tokens`` in ``pool``; None where the pool's
        engines stay inside the native window (stock rotary, nothing to send).

        ``document_seq_len``: the document's prefix plus its question budget,
        for a question on a document.
        """
        model = self._cluster.models[pool.model]
        native = model.native_context
        if not is_dynamic_ntk(model.rope_scaling) or pool.engine.max_model_len <= native:
            return None
        own = max(prompt_tokens, native)
        pool_len = min(max(pool.max_tokens, native), pool.engine.max_model_len)
        mode = pool.rope_base.mode
        if prompt_tokens <= native:
            seq_len = native
        elif mode == "pool":
            seq_len = pool_len
        elif document_seq_len is not None:
            seq_len = min(max(document_seq_len, native), pool.engine.max_model_len)
        elif mode == "request":
            seq_len = prompt_tokens
        else:
            seq_len = min(bucket_top(model, pool.rope_base.bucket_ratio, prompt_tokens), pool_len)
        return RopeChoice(seq_len=seq_len, own_seq_len=own, base_ratio=base_ratio(model, seq_len, own))


def _exponent(model: ModelConfig) -> float | None:
    """d / (d - 2) of base = theta x scale ** (d / (d - 2))."""
    d = model.rotary_dim
    return None if d is None else d / (d - 2)


def base_ratio(model: ModelConfig, seq_len: int, own_seq_len: int) -> float | None:
    """base(seq_len) / base(own_seq_len) for the model's dynamic NTK; None without rotary_dim."""
    exponent = _exponent(model)
    if exponent is None:
        return None
    factor, native = float(model.rope_scaling["factor"]), model.native_context
    return (ntk_scale(factor, native, seq_len) / ntk_scale(factor, native, own_seq_len)) ** exponent


def bucket_top(model: ModelConfig, ratio: float, prompt_tokens: int) -> int:
    """The smallest bucket top holding ``prompt_tokens``.

    Tops are the lengths whose bases are ratio**k times the stock base
    (k = 0, 1, ...): in scale terms ``s_k = ratio ** (k (d - 2) / d)`` and
    ``L_k = N (s_k + factor - 1) / factor``.
    """
    exponent = _exponent(model)
    if exponent is None:
        raise ValueError(f"bucket mode needs the rotary dimension of {model.path}")
    factor, native = float(model.rope_scaling["factor"]), model.native_context
    if prompt_tokens <= native:
        return native
    step = ratio ** (1 / exponent)
    # Tops are rounded up to whole tokens: start one bucket low and walk up.
    k = max(1, math.floor(math.log(ntk_scale(factor, native, prompt_tokens)) / math.log(step)))
    while True:
        top = math.ceil(native * (step**k + factor - 1) / factor - 1e-9)
        if top >= prompt_tokens:
            return top
        k += 1
