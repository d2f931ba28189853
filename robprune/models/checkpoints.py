"""Bring-your-own dense model: a state dict from elsewhere, mapped onto our architectures.

Key layouts this module knows (`LAYOUTS`), tried in order; the first that fits exactly wins:

- `robprune`: our own `state_dict()` (what `robprune run` and the dense cache save).
- `kuangliu`: the CIFAR ResNets of github.com/kuangliu/pytorch-cifar, which AutoAttack's
  `pyautoattack/examples/model_test.pt` and many robust-training repositories use
  (`conv1`, `bn1`, `layer1.0.shortcut.0`, `linear`) -> `resnet18`, `resnet34`, `resnet50`.
- `robustbench_wrn`: RobustBench's WideResNet (`block1.layer.0.convShortcut`, `bn1`, `fc`)
  -> `wrn28`, `wrn28_4`, `wrn28_10` (depth 28 only: our WideResNet).

A `module.` prefix (DataParallel) is stripped first, and a checkpoint wrapped as
`{"state_dict": ...}`, `{"model": ...}` or `{"model_state_dict": ...}` is unwrapped. The model's
input normalisation (`normalize.mean/std`) and BatchNorm's `num_batches_tracked` counters are
taken from the model when the checkpoint lacks them. Anything else that does not fit is an
error that lists the missing and unexpected keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robprune.errors import ConfigError

__all__ = ["LAYOUTS", "Layout", "load_state_dict_file", "map_state_dict"]

_PATH = "dense.checkpoint"
_WRAPPERS = ("state_dict", "model_state_dict", "model")
_FILLED = (re.compile(r"^normalize\.(mean|std)$"), re.compile(r"\.num_batches_tracked$"))


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Renaming rules from a foreign layout to ours, and the architectures it applies to."""

    archs: tuple[str, ...] | None
    """None: any architecture."""
    rules: tuple[tuple[str, str], ...]
    """(regex, replacement) applied in order to every key."""

    def rename(self, key: str) -> str:
        for pattern, replacement in self.rules:
            key = re.sub(pattern, replacement, key)
        return key


LAYOUTS: dict[str, Layout] = {
    "robprune": Layout(archs=None, rules=()),
    "kuangliu": Layout(
        archs=("resnet18", "resnet34", "resnet50"), rules=((r"^linear\.", "classifier."),)
    ),
    "robustbench_wrn": Layout(
        archs=("wrn28", "wrn28_4", "wrn28_10"),
        rules=(
            (r"^(block\d)\.layer\.", r"\1."),
            (r"\.convShortcut\.", ".shortcut."),
            (r"^bn1\.", "bn."),
            (r"^fc\.", "classifier."),
        ),
    ),
}


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors by name from a `torch.save`d state dict (never unpickles code)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(_PATH, f"no such file: {file}")
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same bad input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            _PATH, f"{file} is not a state dict (torch.load(weights_only=True): {reason[:200]})"
        ) from None
    if isinstance(raw, Mapping):
        for key in _WRAPPERS:
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if (
        not isinstance(raw, Mapping)
        or not raw
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in raw.items())
    ):
        raise ConfigError(
            _PATH, f"{file} is not a state dict (expected a mapping of names to tensors)"
        )
    state = dict(raw)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _fits(state: dict[str, Tensor], target: dict[str, Tensor]) -> tuple[list, list, list]:
    missing = [k for k in target if k not in state and not any(p.search(k) for p in _FILLED)]
    unexpected = [k for k in state if k not in target]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in state
        if k in target and state[k].shape != target[k].shape
    ]
    return missing, unexpected, shapes


def _listing(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{f', ... (+{len(keys) - limit} more)' if len(keys) > limit else ''}]"


def map_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, arch: str
) -> tuple[dict[str, Tensor], str]:
    """`state` renamed to `model`'s keys and completed; returns it and the layout's name.

    Raises ConfigError (`dense.checkpoint`) naming the missing, unexpected and mis-shaped keys
    of the closest layout when none fits.
    """
    target = model.state_dict()
    best: tuple[int, str, tuple[list, list, list]] | None = None
    for name, layout in LAYOUTS.items():
        if layout.archs is not None and arch not in layout.archs:
            continue
        renamed = {layout.rename(k): v for k, v in state.items()}
        missing, unexpected, shapes = _fits(renamed, target)
        if not (missing or unexpected or shapes):
            full = {k: renamed.get(k, target[k]) for k in target}
            return {k: v.to(target[k].dtype) for k, v in full.items()}, name
        score = len(missing) + len(unexpected) + len(shapes)
        if best is None or score < best[0]:
            best = (score, name, (missing, unexpected, shapes))
    assert best is not None  # `robprune` applies to every architecture
    _, name, (missing, unexpected, shapes) = best
    tried = [n for n, lay in LAYOUTS.items() if lay.archs is None or arch in lay.archs]
    parts = [f"does not fit {arch} in any known layout ({', '.join(tried)}); closest: {name}"]
    if missing:
        parts.append(f"missing keys {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches {_listing(shapes, 3)}")
    raise ConfigError(_PATH, "; ".join(parts))
