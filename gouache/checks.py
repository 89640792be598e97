"""Checking a config record's values, once, where it is made: each field against its type
hint (a TOML ``steps = "abc"`` or a config.json ``channels = "abc"``) and against a rule of
its own (``lr`` in (0, 1]), so that a mistake is a one-line error before any work starts.

    @dataclass(frozen=True)
    class Schedule:
        sigma: float = 0.5
        def __post_init__(self):
            check_fields(self, {"sigma": (positive, "above 0")}, what="schedule")
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, Mapping

from gouache.errors import GouacheError

__all__ = ["check_fields", "Rule", "positive", "at_least", "between", "non_blank"]

Rule = tuple[Callable[[Any], bool], str]  # (test, what a good value is)


def positive(v: float) -> bool:
    return v > 0


def at_least(lo: float) -> Callable[[float], bool]:
    return lambda v: v >= lo


def between(lo: float, hi: float) -> Callable[[float], bool]:
    """lo <= v <= hi."""
    return lambda v: lo <= v <= hi


def non_blank(v: str) -> bool:
    return bool(v.strip())


def check_fields(obj: Any, rules: Mapping[str, Rule], *, what: str) -> None:
    """Raise GouacheError naming the first field of dataclass ``obj`` whose value has the
    wrong type (floats must also be finite) or breaks its rule in ``rules``."""
    hints = typing.get_type_hints(type(obj))
    fields = dataclasses.fields(obj)
    for f in fields:  # every type first: a rule may read other fields
        value = getattr(obj, f.name)
        if not _fits(value, hints[f.name]):
            raise GouacheError(f"{what}: {f.name} must be {_describe(hints[f.name])}, got {value!r}")
    for f in fields:
        if f.name in rules:
            test, good = rules[f.name]
            if not test(getattr(obj, f.name)):
                raise GouacheError(f"{what}: {f.name} must be {good}, got {getattr(obj, f.name)!r}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a float too (TOML's lr = 1), but not a bool, inf or nan
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this checker does not know: the field's own rule decides


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        plural = {int: "whole numbers", float: "finite numbers", str: "texts"}
        return f"a list of {plural.get(args[0], _describe(args[0]))}"
    names = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text",
             type(None): "none"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
