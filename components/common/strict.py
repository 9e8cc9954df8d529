"""The base of every Seamless config model: unknown keys are errors, types are strict,
and a loaded config cannot be changed in place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
