"""Distribution leaves of a spec (`{choice: [...]}`, `{uniform: [lo, hi]}`, ...): parsing them
and walking a spec tree to find them. Every error names the key path."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robprune.config.typed_mapping import DISTRIBUTION_KEYS
from robprune.errors import ConfigError

__all__ = ["DIST_KINDS", "Dist", "parse_dist", "looks_like_dist", "walk", "check_fixed"]

#: Leaf keys that mark a distribution (one definition, shared with `robprune run`).
DIST_KINDS = DISTRIBUTION_KEYS


@dataclass(frozen=True)
class Dist:
    """One distribution leaf: `kind` is choice|uniform|loguniform|int."""

    path: str
    kind: str
    args: tuple[Any, ...]

    def probes(self) -> list[Any]:
        """Values that exercise the trial validator: every option, or both ends."""
        return list(self.args)

    @property
    def first(self) -> Any:
        return self.args[0]

    def __str__(self) -> str:
        return f"{{{self.kind}: {list(self.args)}}}"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def looks_like_dist(node: Any) -> bool:
    return isinstance(node, Mapping) and bool(set(node) & set(DIST_KINDS))


def _parse_choice(path: str, args: Any) -> Dist:
    if not isinstance(args, list) or not args:
        raise ConfigError(path, f"choice needs a non-empty list of options, got {args!r}")
    for i, option in enumerate(args):
        if looks_like_dist(option):
            raise ConfigError(f"{path}.choice[{i}]", "an option cannot be a distribution")
    seen: list[Any] = []
    for option in args:
        if option in seen:
            raise ConfigError(path, f"choice lists {option!r} twice")
        seen.append(option)
    return Dist(path, "choice", tuple(args))


def parse_dist(path: str, node: Mapping[str, Any]) -> Dist:
    """A distribution mapping (exactly one key of DIST_KINDS) as a `Dist`."""
    if len(node) != 1:
        raise ConfigError(
            path,
            f"a distribution has exactly one key ({', '.join(DIST_KINDS)}); "
            f"got {', '.join(map(str, node))}",
        )
    kind = next(k for k in node if k in DIST_KINDS)
    args = node[kind]
    if kind == "choice":
        return _parse_choice(path, args)
    if not isinstance(args, list) or len(args) != 2:
        raise ConfigError(path, f"{kind} needs [lo, hi], got {args!r}")
    lo, hi = args
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            raise ConfigError(path, f"int needs two integers [lo, hi], got {args!r}")
    elif not (is_number(lo) and is_number(hi)):
        raise ConfigError(path, f"{kind} needs two numbers [lo, hi], got {args!r}")
    if lo >= hi:
        raise ConfigError(path, f"{kind} needs lo < hi, got [{lo}, {hi}]")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(path, f"loguniform needs 0 < lo < hi, got [{lo}, {hi}]")
    return Dist(path, kind, (lo, hi))


def walk(node: Any, default: Any, path: str, dists: list[Dist]) -> Any:
    """Copy `node`, turning distributions into `Dist` (appended to `dists`).

    Unknown keys are left to the trial validator; `default` (the trial defaults at the same
    place) only tells a misspelt distribution from a nested section.
    """
    if looks_like_dist(node):
        dist = parse_dist(path, node)
        dists.append(dist)
        return dist
    if isinstance(node, Mapping):
        if not isinstance(default, Mapping) and len(node) == 1 and default is not None:
            key = next(iter(node))
            raise ConfigError(
                path,
                f"unknown distribution {key!r}; use one of "
                f"{', '.join(DIST_KINDS)} (or a fixed value)",
            )
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ConfigError(f"{path}.{key}" if path else str(key), "keys must be strings")
            child = default.get(key) if isinstance(default, Mapping) else None
            out[key] = walk(value, child, f"{path}.{key}" if path else key, dists)
        return out
    return copy.deepcopy(node)


def check_fixed(node: Any, path: str) -> None:
    """Sections that configure the search itself take fixed values only."""
    if looks_like_dist(node):
        raise ConfigError(
            path, "must be a fixed value: distributions are only allowed in trial settings"
        )
    if isinstance(node, Mapping):
        for key, value in node.items():
            check_fixed(value, f"{path}.{key}")
