"""The base of every settings model: unknown keys are errors, values are frozen once validated.

Settings a user writes (params.yaml, ``--set``, a plugin's Params) are taken exactly as written: a
number field takes a number, never a boolean (``rounds: yes``) or a string (``lr: "0.1"``); an
integer field takes an integer (a float such as 2.0 is refused too); a float field takes a finite
number (``.inf`` and ``.nan`` are refused); a boolean field takes a boolean (not 0, 1 or "yes").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema


class StrictModel(BaseModel):
    # Fields named by an alias (a plugin's `lambda`) are written back under that name, as the user wrote it.
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)


_EXACT_TYPES = frozenset({"int", "float", "bool"})


def _exact_scalars(schema: Any) -> None:
    """Every int, float and bool inside ``schema`` made strict; floats also finite (in place)."""
    if isinstance(schema, dict):
        if schema.get("type") in _EXACT_TYPES:
            schema["strict"] = True
            if schema["type"] == "float":
                schema["allow_inf_nan"] = False
        for value in schema.values():
            _exact_scalars(value)
    elif isinstance(schema, list):
        for value in schema:
            _exact_scalars(value)


class SettingsModel(StrictModel):
    """Settings the user writes: every number and boolean exactly as written, every float finite.

    Done once here, on the schema pydantic builds for each subclass (fields, tuples of numbers,
    optional numbers and unions alike), so no field and no plugin's Params can forget it. Enums,
    tuples and paths keep their usual conversions from YAML's strings and lists.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[BaseModel], handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        _exact_scalars(schema)
        return schema
