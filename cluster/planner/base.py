"""What the planner's parts share: frozen result models and its one error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# When max_num_batched_tokens is unset, vLLM picks 2048-16384 by GPU; the
# largest common value keeps the memory estimates on the safe side.
DEFAULT_BATCHED_TOKENS = 16384


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanError(ValueError):
    """The planner cannot plan a pool (unknown architecture or accelerator)."""
