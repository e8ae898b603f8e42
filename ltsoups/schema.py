"""The base of every settings model: unknown keys are errors, values are frozen once validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # Fields named by an alias (a plugin's `lambda`) are written back under that name, as the user wrote it.
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)
