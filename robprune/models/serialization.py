"""Saving and loading structurally pruned models without pickling modules.

Pruning changes tensor shapes and module attributes (`out_channels`, `groups`, `num_features`,
`in_features`, `normalized_shape`...), so a plain `state_dict()` no longer fits a freshly built
model. `tp.state_dict` (Torch-Pruning 1.6.1) solves this by copying each module's `__dict__`,
which holds the submodule objects themselves: the result is a pickle of modules, and
`torch.load(..., weights_only=True)` rejects it (`Unsupported global: ...Conv2d`).

`pruned_state_dict` stores only tensors and plain values: the ordinary `state_dict()` plus, per
module, its public attributes that are numbers, strings, booleans, None or tuples/lists of
those. `load_pruned_state_dict` writes those attributes into a model built by `create_model`
with the same arguments, resizes its parameters and buffers to the saved shapes, then loads the
tensors strictly. The round trip survives `torch.save` / `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FORMAT", "load_pruned_state_dict", "pruned_state_dict"]

FORMAT = "robprune.pruned-state/1"
_PLAIN = (bool, int, float, str, type(None))
_SKIP = {"training"}


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, tuple | list):
        return all(_is_plain(v) for v in value)
    return False


def pruned_state_dict(model: nn.Module) -> dict[str, Any]:
    """Tensors and structural attributes of `model`; safe for `torch.load(weights_only=True)`."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        plain = {
            key: list(value) if isinstance(value, list) else value
            for key, value in vars(module).items()
            if not key.startswith("_") and key not in _SKIP and _is_plain(value)
        }
        if plain:
            attributes[name] = plain
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "state_dict": state, "attributes": attributes}


def load_pruned_state_dict(model: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Reshape a freshly built `model` to the saved (pruned) structure and load its tensors.

    `model` must come from the same architecture and arguments as the saved one. Returns it.
    """
    if state.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} checkpoint (format={state.get('format')!r})")
    modules = dict(model.named_modules())
    for name, attrs in state["attributes"].items():
        if name not in modules:
            raise ValueError(f"checkpoint has module {name!r} that the model lacks")
        for key, value in attrs.items():
            setattr(modules[name], key, value)
    tensors: dict[str, torch.Tensor] = state["state_dict"]
    for key, saved in tensors.items():
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue  # load_state_dict(strict=True) below reports it
        if attr in owner._parameters and owner._parameters[attr] is not None:
            current = owner._parameters[attr]
            if current.shape != saved.shape:
                owner._parameters[attr] = nn.Parameter(
                    current.new_empty(saved.shape), requires_grad=current.requires_grad
                )
        elif attr in owner._buffers and owner._buffers[attr] is not None:
            current = owner._buffers[attr]
            if current.shape != saved.shape:
                owner._buffers[attr] = current.new_empty(saved.shape)
    model.load_state_dict(tensors, strict=True)
    return model
