"""Dotted key paths (`prune.mrs.temperature`) into nested mappings: read, write, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["get_path", "set_path", "delete_path"]


def get_path(tree: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at `path`, or `default` where any part of it is missing."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set the leaf at `path`, creating the mappings on the way."""
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def delete_path(tree: dict[str, Any], path: str) -> None:
    """Remove a leaf, and the mappings that it leaves empty."""
    parts = path.split(".")
    chain: list[dict[str, Any]] = [tree]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return
        chain.append(child)
    chain[-1].pop(parts[-1], None)
    for depth in range(len(parts) - 1, 0, -1):
        if chain[depth]:
            break
        chain[depth - 1].pop(parts[depth - 1], None)
