"""The base of every config model: unknown keys are refused, assignments validated.

A typo in a profile (``max_num_seq``) must fail at load time, not be ignored
until a pool misbehaves, so every model forbids extra keys.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
