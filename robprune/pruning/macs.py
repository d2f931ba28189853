"""Multiply-accumulates of one forward pass, counted by PyTorch's own `FlopCounterMode`.

MACs = FLOPs / 2 of every convolution and matrix product the forward pass runs, attention's
`q @ k^T` and `attn @ v` included (a hand count per module type missed MobileViT's 4.9 M of
80.2 M). Normalisation, bias additions and activations are not multiply-accumulates and are not
counted, as in PyTorch's counter and fvcore.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from robprune.attacks import eval_mode

__all__ = ["count_macs", "leaf_macs"]


def _counted(model: nn.Module, example: Tensor) -> FlopCounterMode:
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(example[:1])
    return counter


def count_macs(model: nn.Module, example: Tensor) -> int:
    """MACs of one forward pass on one example (eval mode)."""
    return int(_counted(model, example).get_total_flops()) // 2


def leaf_macs(model: nn.Module, example: Tensor) -> dict[nn.Module, int]:
    """MACs per Conv/Linear module for one example (eval mode); modules that run none are
    left out."""
    per_module = _counted(model, example).get_flop_counts()
    root = type(model).__name__
    out: dict[nn.Module, int] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        counts = per_module.get(f"{root}.{name}")
        if counts:
            out[module] = int(sum(counts.values())) // 2
    return out
