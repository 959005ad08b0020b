"""A small declarative schema: what a file read back must hold, checked as a whole before use.

A schema is a tree of specs: `Num`, `Text`, `Flag`, `ListOf`, `MapOf`, `Record` (keys to
specs; `Opt(spec)` for a key that may be absent), `Array` (dtype kind and a shape). A
shape entry, or a number's ``dim``, may name a dimension ("steps", "epochs"): the first
value seen binds it, and every later one, in this file or another, must agree. That is how
files are checked against each other (steps.npz's length against summary.json's steps).

``spec.check(value, at, dims)`` returns the value (numbers as numbers, arrays as arrays) or
raises `SchemaError` saying where (a key path) and what is wrong. Adding a key is one line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


class SchemaError(ValueError):
    """Where in a file (a key path) and what is wrong there."""


class Dims(dict):
    """Named dimensions seen so far: name -> (value, where it was first seen)."""

    def bind(self, name: str, value: int, at: str) -> None:
        if name not in self:
            self[name] = (value, at)
        elif self[name][0] != value:
            seen, where = self[name]
            raise SchemaError(f"{at} gives {value} for {name.replace('_', ' ')}, but {where} gives {seen}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _at(at: str, key: Any) -> str:
    return f"{at}.{key}" if isinstance(key, str) else f"{at}[{key}]"


@dataclasses.dataclass(frozen=True)
class Num:
    """A number: ``integer`` only, within [low, high]; ``null`` admits None (NaN is written as null)."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    null: bool = False
    dim: str | None = None

    def check(self, value, at: str, dims: Dims):
        if value is None and self.null:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (self.integer and isinstance(value, float))
        ):
            raise SchemaError(f"{at} is {_kind(value)}, not {'an integer' if self.integer else 'a number'}")
        if not math.isfinite(value):
            raise SchemaError(f"{at} is {value}, not a finite number")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise SchemaError(f"{at} is {value}, outside [{self.low}, {self.high}]")
        if self.dim:
            dims.bind(self.dim, int(value), at)
        return value


INT = Num(integer=True, low=0)
REAL = Num()
REAL_OR_NULL = Num(null=True)
FRACTION = Num(low=0.0, high=1.0)


@dataclasses.dataclass(frozen=True)
class Text:
    choices: tuple[str, ...] | None = None
    null: bool = False

    def check(self, value, at: str, dims: Dims):
        if value is None and self.null:
            return None
        if not isinstance(value, str):
            raise SchemaError(f"{at} is {_kind(value)}, not a string")
        if self.choices is not None and value not in self.choices:
            raise SchemaError(f"{at} is {value!r}, not one of {', '.join(self.choices)}")
        return value


@dataclasses.dataclass(frozen=True)
class Flag:
    def check(self, value, at: str, dims: Dims):
        if not isinstance(value, bool):
            raise SchemaError(f"{at} is {_kind(value)}, not true or false")
        return value


@dataclasses.dataclass(frozen=True)
class Anything:
    """A value passed on as it is (config values, checked by RunConfig; a grid point's values)."""

    def check(self, value, at: str, dims: Dims):
        return value


@dataclasses.dataclass(frozen=True)
class Opt:
    """A key that may be absent (a file written before the key existed: the feature is then absent)."""

    spec: Any


@dataclasses.dataclass(frozen=True)
class ListOf:
    item: Any
    length: int | str | None = None  # a number, or a dimension's name
    least: int = 0
    null: bool = False

    def check(self, value, at: str, dims: Dims):
        if value is None and self.null:
            return None
        if not isinstance(value, list):
            raise SchemaError(f"{at} is {_kind(value)}, not a list")
        if len(value) < self.least:
            raise SchemaError(f"{at} holds {len(value)} items, fewer than {self.least}")
        if isinstance(self.length, int) and len(value) != self.length:
            raise SchemaError(f"{at} holds {len(value)} items, not {self.length}")
        if isinstance(self.length, str):
            dims.bind(self.length, len(value), f"the length of {at}")
        return [self.item.check(item, _at(at, index), dims) for index, item in enumerate(value)]


@dataclasses.dataclass(frozen=True)
class MapOf:
    """An object whose keys are data (variable names, grid fields), each value of one spec."""

    value: Any
    least: int = 0
    keys: tuple[str, ...] = ()  # keys that must be present

    def check(self, value, at: str, dims: Dims):
        if not isinstance(value, dict):
            raise SchemaError(f"{at} is {_kind(value)}, not an object")
        if len(value) < self.least:
            raise SchemaError(f"{at} holds {len(value)} entries, fewer than {self.least}")
        for key in self.keys:
            if key not in value:
                raise SchemaError(f"{at} lacks the key {key!r}")
        return {key: self.value.check(item, _at(at, key), dims) for key, item in value.items()}


@dataclasses.dataclass(frozen=True)
class Record:
    """An object with named keys; keys not declared are passed on unchecked (newer writers add keys)."""

    fields: dict[str, Any]
    null: bool = False

    def check(self, value, at: str, dims: Dims):
        if value is None and self.null:
            return None
        if not isinstance(value, dict):
            raise SchemaError(f"{at or 'the file'} is {_kind(value)}, not an object")
        checked = dict(value)
        for key, spec in self.fields.items():
            if key not in value:
                if isinstance(spec, Opt):
                    continue
                raise SchemaError(f"{at or 'the file'} lacks the key {key!r}")
            spec = spec.spec if isinstance(spec, Opt) else spec
            checked[key] = spec.check(value[key], _at(at, key) if at else key, dims)
        return checked


@dataclasses.dataclass(frozen=True)
class Array:
    """An array of dtype kind(s) ``kinds`` ("f" float, "i"/"u" integer, "U" text, "b" bool) and a shape.

    A shape entry is an int, a dimension's name, or None (any length). ``low``/``high`` bound the values,
    which must then be finite unless ``finite=False`` (NaN passes: a diverged model's output).
    """

    kinds: str
    shape: tuple[int | str | None, ...] | None = None
    low: float | None = None
    high: float | None = None
    finite: bool = True

    def check_header(self, shape: tuple[int, ...], dtype: np.dtype, at: str, dims: Dims) -> None:
        """Checks of what a header declares, before any data is read."""
        if dtype.kind not in self.kinds:
            raise SchemaError(f"{at} has dtype {dtype}, not of kind {self.kinds!r}")
        if self.shape is None:
            return
        if len(shape) != len(self.shape):
            raise SchemaError(f"{at} has shape {tuple(shape)}, not {len(self.shape)}-dimensional")
        for axis, (size, want) in enumerate(zip(shape, self.shape)):
            if isinstance(want, int) and size != want:
                raise SchemaError(f"{at} has shape {tuple(shape)}: axis {axis} should be {want}")
            if isinstance(want, str):
                dims.bind(want, size, f"axis {axis} of {at}")

    def check(self, value, at: str, dims: Dims):
        if not isinstance(value, np.ndarray):
            raise SchemaError(f"{at} is {_kind(value)}, not an array")
        self.check_header(value.shape, value.dtype, at, dims)
        if value.size and (self.low is not None or self.high is not None):
            if value.dtype.kind == "f" and self.finite and not np.isfinite(value).all():
                raise SchemaError(f"{at} holds values that are not finite")
            if value.dtype.kind == "f" and np.isnan(value).all():
                return value
            low, high = (np.nanmin(value), np.nanmax(value)) if value.dtype.kind == "f" else (value.min(), value.max())
            if (self.low is not None and low < self.low) or (self.high is not None and high > self.high):
                raise SchemaError(f"{at} holds values in [{low}, {high}], outside [{self.low}, {self.high}]")
        return value


def arrays(specs: dict[str, Any], values: dict[str, np.ndarray], dims: Dims, at: str = "") -> dict[str, np.ndarray]:
    """Check a set of named arrays (an npz's, an HDF5 group's) against ``specs``; `Opt` ones may be absent."""
    for name, spec in specs.items():
        if name not in values and not isinstance(spec, Opt):
            raise SchemaError(f"lacks the array {at}{name}")
    checked = dict(values)
    for name, spec in specs.items():
        if name in values:
            checked[name] = (spec.spec if isinstance(spec, Opt) else spec).check(values[name], f"{at}{name}", dims)
    return checked


def header_checker(specs: dict[str, Any], dims: Dims):
    """A `safeio.npz_arrays` ``check``: each declared array's header against its spec, before its data is read."""

    def check(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        spec = specs.get(name)
        if spec is not None:
            (spec.spec if isinstance(spec, Opt) else spec).check_header(shape, dtype, name, dims)

    return check
