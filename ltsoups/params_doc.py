"""A plugin's params as a person reads them: name, type, default and description of each field."""

from __future__ import annotations

import enum
import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class ParamDoc:
    name: str
    type: str
    default: str
    """The default as YAML would spell it, or "required"."""
    description: str


def params_doc(model: type[BaseModel]) -> list[ParamDoc]:
    """One entry per field of ``model``, in declaration order."""
    return [
        ParamDoc(
            field.alias or name,
            " ".join([type_name(field.annotation), *_bounds(field.metadata)]),
            _default(field.get_default(call_default_factory=True)),
            field.description or "",
        )
        for name, field in model.model_fields.items()
    ]


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="))


def _bounds(metadata: list[Any]) -> list[str]:
    return [f"{sign} {getattr(rule, key)}" for rule in metadata for key, sign in _BOUNDS if hasattr(rule, key)]


def type_name(annotation: Any) -> str:
    """``int``, ``float | null``, ``one of: a, b``, ``list of str``, ... for a field's annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        inner = [arg for arg in get_args(annotation) if arg is not Ellipsis]
        return f"list of {type_name(inner[0])}" if inner else "list"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping: " + ", ".join(annotation.model_fields)
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, enum.Enum):
        value = value.value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
