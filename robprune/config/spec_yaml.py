"""YAML as YAML 1.2 reads it: one loader for specs, trial configs and `--set` overrides.

PyYAML implements YAML 1.1, where `1e-3` is the string "1e-3" (its float needs a dot),
`010` is octal 8, `0o17` is a string and `yes`/`on`/`no`/`off` are booleans. Researchers write
learning rates as `1e-3`, so every place that reads a spec or an override uses `Yaml12Loader`,
whose plain scalars follow the YAML 1.2 core schema (spec 1.2.2, section 10.3.2):

    null   ~ null Null NULL (empty)
    bool   true True TRUE false False FALSE
    int    [-+]?[0-9]+   0o[0-7]+   0x[0-9a-fA-F]+
    float  [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?   [-+]?.inf (any case form)   .nan

Everything else is a string: `1_000`, `0b101`, `1:30`, `yes`, `2024-01-01`, `-0x1F`, `inf`.
`dump_yaml` quotes any string that either YAML 1.1 or 1.2 would read as something else, so a
file written here reads back the same under both.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from robprune.errors import BadInput, ConfigError

__all__ = [
    "Yaml12Loader",
    "Yaml12Dumper",
    "load_yaml_text",
    "load_yaml",
    "parse_value",
    "apply_overrides",
    "dump_yaml",
]

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
#: (tag, pattern, possible first characters) in resolution order: int before float.
_CORE_RESOLVERS = (
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    (
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    ),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"]),  # anchors: `<<: *base`
)


class Yaml12Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.2 core-schema scalars (no timestamps, no sexagesimals)."""

    yaml_implicit_resolvers: dict = {}


class Yaml12Dumper(yaml.SafeDumper):
    """`yaml.SafeDumper` that also quotes strings YAML 1.2 would read as numbers (`"1e-3"`)."""


for _tag, _pattern, _first in _CORE_RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, _first)
    Yaml12Dumper.add_implicit_resolver(_tag, _pattern, _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if not _INT.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a YAML 1.2 integer", node.start_mark
        )
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # `010` is ten in YAML 1.2, not octal eight


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    if _INT.match(text):  # `!!float 1`
        return float(_construct_int(loader, node))
    if not _FLOAT.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a YAML 1.2 number", node.start_mark
        )
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


#: A spec nested deeper than this, or larger than MAX_NODES once its aliases are expanded,
#: is refused before anything walks it (real specs are 4 levels deep and under 500 nodes).
MAX_DEPTH = 32
MAX_NODES = 100_000


def _check_size(data: Any, source: str) -> None:
    """Depth and expanded size of a loaded document, without recursion."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    nodes = 0
    while stack:
        node, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BadInput(
                f"{source}: more than {MAX_NODES} values once YAML aliases are expanded"
            )
        if depth > MAX_DEPTH:
            raise BadInput(f"{source}: {path or 'the document'} is nested over {MAX_DEPTH} deep")
        if isinstance(node, dict):
            stack.extend(
                (v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in node.items()
            )
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node))


def load_yaml_text(text: str, *, source: str = "YAML") -> Any:
    """Parse YAML 1.2 text; malformed input is one-line `BadInput` naming `source` and line."""
    try:
        data = yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{source}: not valid YAML{where}") from None
    except RecursionError:
        raise BadInput(f"{source}: nested over {MAX_DEPTH} deep") from None
    _check_size(data, source)
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is one-line bad input."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(
            f"{path}: is a directory; give a YAML spec file (e.g. examples/digits.yaml)"
        )
    if not path.is_file():
        raise BadInput(f"spec file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = load_yaml_text(text, source=str(path))
    if data is None:  # an empty file must not start a run of every default (`{}` says so)
        raise BadInput(
            f"{path}: the spec is empty; it names at least the data, the model and the "
            "pruning (see examples/digits.yaml)"
        )
    if not isinstance(data, dict):
        raise BadInput(f"{path}: must be a YAML mapping at top level")
    return data


def parse_value(raw: str) -> Any:
    """One `--set` value as YAML 1.2: `5e-4` is a float, `[fgsm, pgd20]` a list, `yes` a string."""
    try:
        value = yaml.load(raw, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
        _check_size(value, "value")
    except (yaml.YAMLError, RecursionError, BadInput):
        raise ValueError(f"value {raw[:80]!r} is not valid YAML (or too deep)") from None
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML 1.2) to a copy of `data`."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            value = parse_value(raw)
        except ValueError as exc:
            raise BadInput(f"--set {key}: {exc}") from None
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


def dump_yaml(data: Any) -> str:
    """Block-style YAML, key order kept, readable by YAML 1.1 and 1.2 parsers alike."""
    return yaml.dump(data, Dumper=Yaml12Dumper, sort_keys=False, allow_unicode=True)
