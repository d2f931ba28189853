"""Plain mappings (YAML) to typed, frozen dataclasses, with errors that name the key path.

The one validator of the project. A section is a dataclass; each field says what it accepts in
its annotation, so a new field is one line:

    lr: Annotated[float, Interval(0, 10, lo_open=True)] = 0.01
    schedule: Annotated[str, Choice(SCHEDULES)] = "cosine"
    attacks: tuple[Annotated[str, Check(parse_attack_name)], ...] = ("fgsm", "pgd20")
    steps: Annotated[int | None, Interval(1, 1000)] = None     # None passes every constraint

`build(cls, mapping, path)` checks types (ints accepted for floats, integral floats for ints,
no silent coercion of strings or bools), builds the dataclass, then `check_tree` runs every
field's constraints (defaults included) and finally each section's optional
`validate(self, path)` hook, for rules that tie fields together (`primary` must be one of
`attacks`). Errors are `ConfigError(key_path, message)`: `finetune.lr: must be in (0, 10], ...`.
Generic on purpose: `robprune.config` declares the trial's sections; a search spec's sections
can be declared the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from robprune.errors import ConfigError

__all__ = [
    "Interval",
    "Choice",
    "Check",
    "build",
    "build_many",
    "check_tree",
    "to_plain",
    "require",
    "require_in",
    "DISTRIBUTION_KEYS",
]

#: Keys that mark a search-space distribution at a leaf (docs/architecture.md).
DISTRIBUTION_KEYS = ("choice", "uniform", "loguniform", "int")


def require(ok: bool, path: str, message: str) -> None:
    """Raise `ConfigError(path, message)` unless `ok`."""
    if not ok:
        raise ConfigError(path, message)


def require_in(value: Any, allowed: tuple, path: str) -> None:
    require(value in allowed, path, f"unknown {value!r}; allowed: {', '.join(map(str, allowed))}")


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Interval:
    """A closed or open range; None is unbounded. `Interval(0, 0.5, lo_open=True)` is (0, 0.5]."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def check(self, value: Any, path: str) -> None:
        lo, hi = self.lo, self.hi
        bad_lo = lo is not None and (value <= lo if self.lo_open else value < lo)
        bad_hi = hi is not None and (value >= hi if self.hi_open else value > hi)
        bad_inf = isinstance(value, float) and not math.isfinite(value)
        require(
            not (bad_lo or bad_hi or bad_inf),
            path,
            f"must be in {self.describe()}, got {value!r}",
        )


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of names (a registry's keys)."""

    options: tuple[Any, ...]

    def describe(self) -> str:
        return ", ".join(map(str, self.options))

    def check(self, value: Any, path: str) -> None:
        require_in(value, self.options, path)


@dataclass(frozen=True)
class Check:
    """A rule owned by a lower layer: `rule(value)` raises `ValueError(message)` when bad.

    The message becomes the error after the key path, so the layer that owns the rule (the
    attack registry's name grammar, the synthetic data set's sizes) keeps it in one place.
    """

    rule: Callable[[Any], Any]

    def describe(self) -> str:
        return (self.rule.__doc__ or self.rule.__name__).strip().splitlines()[0]

    def check(self, value: Any, path: str) -> None:
        try:
            self.rule(value)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None


_CONSTRAINTS = (Interval, Choice, Check)


# --------------------------------------------------------------------------- mapping -> types


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and dicts to JSON/YAML-safe dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against a field's type annotation; ints are accepted for floats."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        require_in(value, typing.get_args(tp), path)
        return value
    if origin is tuple:
        require(isinstance(value, list | tuple), path, f"must be a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        require(
            len(value) == len(args), path, f"must be a list of {len(args)} items, got {value!r}"
        )
        return tuple(
            _coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else _construct(tp, value, path)
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        require(ok and value == value, path, f"must be a number, got {value!r}")
        return float(value)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            return int(value)  # `epochs: 1e2` is an integer written as YAML 1.2 writes it
        require(ok, path, f"must be an integer, got {value!r}")
        return value
    if tp in (str, bool, dict):
        names = {str: "a string", bool: "true or false", dict: "a mapping"}
        require(isinstance(value, tp), path, f"must be {names[tp]}, got {value!r}")
        return copy.deepcopy(value)
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Annotations of a config class, resolved once (resolving them dominated parse time)."""
    return typing.get_type_hints(cls, include_extras=True)


def _construct(cls: type, data: Any, path: str, ignore_top: tuple[str, ...] = ()) -> Any:
    label = path or "config"
    require(isinstance(data, Mapping), label, f"must be a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            if not path and key in ignore_top:
                continue
            raise ConfigError(key_path, f"unknown key; allowed: {', '.join(sorted(names))}")
        if isinstance(value, Mapping) and len(value) == 1 and set(value) & set(DISTRIBUTION_KEYS):
            raise ConfigError(
                key_path,
                "a distribution is only allowed in a search spec; "
                "`robprune run` needs a fixed value",
            )
        kwargs[key] = _coerce(value, hints[key], key_path)
    return cls(**kwargs)


def _check_value(value: Any, tp: Any, path: str) -> None:
    if typing.get_origin(tp) is Annotated:
        base, *metadata = typing.get_args(tp)
        if value is not None:
            for constraint in metadata:
                if isinstance(constraint, _CONSTRAINTS):
                    constraint.check(value, path)
        _check_value(value, base, path)
        return
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(arms) == 1:
            _check_value(value, arms[0], path)
        return
    if origin is tuple and isinstance(value, tuple):
        args = typing.get_args(tp)
        per_item = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        for i, (item, item_tp) in enumerate(zip(value, per_item, strict=False)):
            _check_value(item, item_tp, f"{path}[{i}]")
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_tree(value, path)


def check_tree(obj: Any, path: str = "") -> None:
    """Run every field's constraints (defaults too), then the section's `validate(path)` hook.

    Children are checked before their parent, so a hook may rely on its sub-sections being
    valid. Raises `ConfigError` naming the first bad key path.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        key_path = f"{path}.{f.name}" if path else f.name
        _check_value(getattr(obj, f.name), hints[f.name], key_path)
    hook = getattr(obj, "validate", None)
    if callable(hook):
        hook(path)


def build(cls: type, data: Any, path: str = "", *, ignore_top: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass `cls` from a mapping and check it; top keys in `ignore_top` skip."""
    obj = _construct(cls, data, path, ignore_top)
    check_tree(obj, path)
    return obj


def build_many(cls: type, datas: Iterable[Any], *, ignore_top: tuple[str, ...] = ()) -> list[Any]:
    """`build` of many mappings that share most of their sections (a search grid's cells):
    each distinct top-level section is built and checked once and the instance shared (they
    are frozen). A mapping the shortcut cannot take is built alone by `build`, so a bad one
    raises exactly the error `build` raises."""
    hints = _hints(cls)
    sections = {
        f.name: _strip(hints[f.name])
        for f in dataclasses.fields(cls)
        if f.init and dataclasses.is_dataclass(_strip(hints[f.name]))
    }
    seen: dict[tuple[str, str], Any] = {}
    out = []
    for data in datas:
        try:
            out.append(_build_sharing(cls, data, sections, seen, ignore_top, hints))
        except (ConfigError, TypeError, ValueError):
            out.append(build(cls, data, ignore_top=ignore_top))
    return out


def _build_sharing(
    cls: type,
    data: Any,
    sections: dict[str, type],
    seen: dict[tuple[str, str], Any],
    ignore_top: tuple[str, ...],
    hints: dict[str, Any],
) -> Any:
    require(isinstance(data, Mapping), "config", f"must be a mapping, got {data!r}")
    shared = dict(data)
    for name, section_cls in sections.items():
        sub = data.get(name, {})  # absent: the section's defaults, as its default_factory
        require(isinstance(sub, Mapping), name, "must be a mapping")
        key = (name, json.dumps(sub, sort_keys=True))
        if key not in seen:
            seen[key] = build(section_cls, sub, name)
        shared[name] = seen[key]
    obj = _construct(cls, shared, "", ignore_top)
    for f in dataclasses.fields(obj):  # the sections were checked when they were built
        if f.name not in sections:
            _check_value(getattr(obj, f.name), hints[f.name], f.name)
    hook = getattr(obj, "validate", None)
    if callable(hook):
        hook("")
    return obj
