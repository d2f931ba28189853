"""Plain mappings (YAML) to typed, frozen dataclasses, with errors that name the key path.

Generic on purpose: `robprune.config` declares the fields, this module checks a mapping against
their annotations (ints accepted for floats, no silent coercion of strings or bools).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from robprune.errors import BadInput, ConfigError

__all__ = [
    "build",
    "to_plain",
    "load_yaml",
    "apply_overrides",
    "require",
    "require_in",
    "DISTRIBUTION_KEYS",
]

#: Keys that mark a search-space distribution at a leaf (DESIGN §3).
DISTRIBUTION_KEYS = ("choice", "uniform", "loguniform", "int")


def require(ok: bool, path: str, message: str) -> None:
    """Raise `ConfigError(path, message)` unless `ok`."""
    if not ok:
        raise ConfigError(path, message)


def require_in(value: Any, allowed: tuple, path: str) -> None:
    require(value in allowed, path, f"unknown {value!r}; allowed: {', '.join(map(str, allowed))}")


def to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dict: "a mapping",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against a field's type annotation; ints are accepted for floats."""
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
        (item_tp, _) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        require(ok and value == value, path, f"must be a number, got {value!r}")
        return float(value)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        require(ok, path, f"must be an integer, got {value!r}")
        return value
    if tp in (str, bool, dict):
        require(isinstance(value, tp), path, f"must be {_type_name(tp)}, got {value!r}")
        return copy.deepcopy(value)
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def build(cls: type, data: Any, path: str, *, ignore_top: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass `cls` from a mapping; top-level keys in `ignore_top` are skipped."""
    label = path or "config"
    require(isinstance(data, Mapping), label, f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is one-line bad input."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"spec file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: must be a YAML mapping at top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML) to a copy of `data`."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise BadInput(f"--set {key}: value {raw!r} is not valid YAML") from None
        node = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    ".".join(parts[: depth + 1]), f"is not a mapping; cannot set {key}"
                )
            node = child
        node[parts[-1]] = value
    return data
