"""Which parameters exist given others (conditional parameters, declared with the factors in
`robprune.config.factors`), and which change the dense model. Used by the spec and the space."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from robprune.config.factors import CONDITIONS  # one table of factors and their conditions
from robprune.io.dense_cache import DENSE_PREFIXES  # what robprune.io.dense_cache.dense_key reads

__all__ = ["CONDITIONS", "DENSE_PREFIXES", "is_applicable", "is_dense_path"]


def is_applicable(path: str, values: Mapping[str, Any], fixed: Callable[[str], Any]) -> bool:
    """Whether a parameter exists given the values chosen so far; `fixed(path)` gives the
    value of a governing parameter that is not varied (the spec's fixed value or default)."""
    for prefix, (governing, allowed) in CONDITIONS.items():
        if path == prefix or path.startswith(prefix):
            value = values[governing] if governing in values else fixed(governing)
            return value in allowed
    return True


def is_dense_path(path: str) -> bool:
    """Whether a key path changes the dense model (trained once, before the trials)."""
    return path == "seed" or any(path == p or path.startswith(p) for p in DENSE_PREFIXES)
