"""Dataclasses to JSON and back, every value checked against its field's type.

One codec for everything that crosses a process boundary as a description (a job, a batch's video): it
walks the dataclass's own fields, so a field added to a job travels without anyone listing it, and a
message that names an unknown field, leaves out a required one or gives a value of the wrong type is
refused with the field's path (`job.model.batch_size: expected int, got str`), never half-built.

A field whose metadata holds `LOCAL` belongs to the process that made it (a callback, a Redis URL with
its password, workers to spawn) and is never written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, TypeVar, Union

from streamer.errors import StreamerError

T = TypeVar("T")
LOCAL = {"local": True}  # field(metadata=LOCAL): stays in its process
MAX_TEXT = 8 * 1024 * 1024  # bytes of JSON read at once
MAX_DEPTH = 32  # nesting of free-form values (settings)
MAX_ITEMS = 100_000  # items of one list or mapping


class FieldError(ValueError):
    """A value that does not fit its field."""


def dumps(value: Any) -> str:
    """JSON of a dataclass (its fields that are not LOCAL)."""
    return json.dumps(to_data(value), separators=(",", ":"), allow_nan=False)


def loads(cls: type[T], text: str | bytes, where: str = "") -> T:
    """The dataclass `cls` from JSON written by `dumps`; FieldError says what does not fit, and where."""
    if len(text) > MAX_TEXT:
        raise FieldError(f"{where or cls.__name__}: {len(text)} bytes, over the {MAX_TEXT} byte limit")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise FieldError(f"{where or cls.__name__}: not JSON ({type(error).__name__})") from None
    return from_data(cls, data, where or cls.__name__)


def to_data(value: Any) -> Any:
    """Plain JSON values of a dataclass, tuple, list or mapping."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in wire_fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [to_data(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_data(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise FieldError(f"cannot write a {type(value).__name__} value")


def wire_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of `cls` that travel: made by its constructor, not LOCAL."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("local")]


def from_data(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise FieldError(f"{where}: expected an object, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in wire_fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise FieldError(f"{where}: unknown field {unknown[0][:64]!r}")
    missing = [
        name
        for name, f in known.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise FieldError(f"{where}: missing field {missing[0]!r}")
    values = {name: _value(hints[name], item, f"{where}.{name}") for name, item in data.items()}
    try:
        return cls(**values)
    except FieldError:
        raise
    except (StreamerError, ValueError, TypeError, OverflowError) as error:  # the dataclass's own checks
        raise FieldError(f"{where}: {str(error)[:300]}") from None


def _value(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        arms = typing.get_args(kind)
        if value is None:
            if type(None) in arms:
                return None
            raise FieldError(f"{where}: may not be null")
        errors = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return _value(arm, value, where)
            except FieldError as error:
                errors.append(str(error))
        raise FieldError(errors[0] if len(errors) == 1 else f"{where}: {_kind(value)} fits none of its types")
    if kind is Any:
        return _free(value, where, 0)
    if dataclasses.is_dataclass(kind):
        return from_data(kind, value, where)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif origin is tuple or kind is tuple:
        return tuple(_items(kind, value, where))
    elif origin is list or kind is list:
        return list(_items(kind, value, where))
    elif origin is dict or kind is dict:
        if isinstance(value, dict):
            if len(value) > MAX_ITEMS:
                raise FieldError(f"{where}: more than {MAX_ITEMS} entries")
            item_kind = typing.get_args(kind)[1] if typing.get_args(kind) else Any
            return {key: _value(item_kind, item, f"{where}.{key[:64]}") for key, item in value.items()}
    else:
        raise FieldError(f"{where}: a {kind} field cannot be read")
    raise FieldError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {_kind(value)}")


def _items(kind: Any, value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise FieldError(f"{where}: expected a list, got {_kind(value)}")
    if len(value) > MAX_ITEMS:
        raise FieldError(f"{where}: more than {MAX_ITEMS} items")
    args = typing.get_args(kind)
    if not args:
        return [_free(item, f"{where}[{i}]", 0) for i, item in enumerate(value)]
    if typing.get_origin(kind) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise FieldError(f"{where}: expected {len(args)} items, got {len(value)}")
        return [_value(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value))]
    return [_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]


def _free(value: Any, where: str, depth: int) -> Any:
    """A free-form JSON value (a model setting), bounded in depth."""
    if depth > MAX_DEPTH:
        raise FieldError(f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        return {key: _free(item, where, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_free(item, where, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(f"{where}: not a finite number")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
