"""What the planner's parts share: frozen result models and its one error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanError(ValueError):
    """The planner cannot plan a pool (unknown architecture or accelerator)."""
