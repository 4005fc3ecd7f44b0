"""The rotary tables of a pool past the native window, per rope_base mode.

The engine's rotary layer (deployments/rope/rotary.py) keeps no cos/sin cache:
each forward computes every token's cos/sin from its position and its
request's inverse frequencies. What it holds, per rotary module (one per
engine worker, shared by the layers), is the same in every mode:

* persistent: a table of ``(max_num_seqs + 1) x rotary_dim / 2`` float32
  inverse frequencies (row 0 the pool's base, one row per running request)
  and two int64 vectors of ``max_num_batched_tokens`` (each token's row, and
  0..n-1);
* per forward, transiently: ``max_num_batched_tokens x rotary_dim`` float32
  of frequencies and cos/sin, at most.

A stock-style cos/sin cache would be ``max_model_len x rotary_dim`` float32
per base: one for the pool mode, one per bucket, and one per prompt length in
the request mode (unbounded). The plan reports both, so the choice of mode
never shows up as memory.
"""

from __future__ import annotations

from pydantic import Field

from cluster.config import ClusterConfig, PoolConfig
from cluster.config.pool import RopeBaseMode
from cluster.planner.base import DEFAULT_BATCHED_TOKENS, FrozenModel
from deployments.rope.ntk import is_dynamic_ntk

FLOAT32 = 4
INT64 = 8


class RotaryPlan(FrozenModel):
    """Rotary-table memory of one engine worker of a pool past the native window."""

    mode: RopeBaseMode = Field(description="The pool's rope_base.mode.")
    rotary_dim: int = Field(description="Rotary dimension of the heads.")
    table_bytes: int = Field(description="Persistent: inverse-frequency rows and per-token row indices.")
    step_bytes: int = Field(description="Transient, per forward: frequencies and cos/sin of a full batch.")
    cache_bytes_per_base: int = Field(
        description="A full cos/sin cache of one base (max_model_len x rotary_dim float32), for comparison."
    )
    bases: int | None = Field(
        description="Bases a per-base cache would need: 1 (pool), the buckets of the band (bucket), "
        "None: one per prompt length (request)."
    )


def plan_rotary(cluster: ClusterConfig, pool: PoolConfig, head_dim: int) -> RotaryPlan | None:
    """The rotary tables of ``pool``; None where its engines stay inside the window (stock rotary)."""
    from deployments.routing.rope_base import bucket_top

    model = cluster.models[pool.model]
    engine = pool.engine
    if not is_dynamic_ntk(model.rope_scaling) or engine.max_model_len <= model.native_context:
        return None
    rotary_dim = model.rotary_dim or head_dim
    batched = engine.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS
    bases: int | None = 1
    if pool.rope_base.mode == "request":
        bases = None
    elif pool.rope_base.mode == "bucket":
        model = model.model_copy(update={"rotary_dim": rotary_dim})
        top, low, bases = 0, max(pool.min_tokens, model.native_context + 1), 0
        while top < pool.max_tokens:
            top = bucket_top(model, pool.rope_base.bucket_ratio, max(low, top + 1))
            bases += 1
    return RotaryPlan(
        mode=pool.rope_base.mode,
        rotary_dim=rotary_dim,
        table_bytes=(engine.max_num_seqs + 1) * rotary_dim // 2 * FLOAT32 + 2 * batched * INT64,
        step_bytes=batched * (rotary_dim // 2 + rotary_dim) * FLOAT32,
        cache_bytes_per_base=engine.max_model_len * rotary_dim * FLOAT32,
        bases=bases,
    )
