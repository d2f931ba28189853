"""Model registry: architectures are looked up by name, timm-style.

A factory takes the `ImageSpec` it is built for (classes, input shape, normalisation) and the
`width` (None: the architecture's default) and is registered with `@register_model`;
`create_model` validates the shared arguments once so factories can trust them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real
from typing import Protocol

from torch import nn

from .base import ImageSpec

__all__ = ["MODELS", "ModelFactory", "create_model", "list_models", "register_model"]


class ModelFactory(Protocol):
    def __call__(self, spec: ImageSpec, width: float | None) -> nn.Module: ...


MODELS: dict[str, ModelFactory] = {}


def register_model(
    name: str | None = None,
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register a factory under `name` (default: the function's name)."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        key = name or factory.__name__  # type: ignore[attr-defined]
        if key in MODELS:
            raise ValueError(f"model {key!r} registered twice")
        MODELS[key] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(MODELS)


def create_model(
    arch: str,
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
    width: float | int | None = None,
) -> nn.Module:
    """Build `arch` for `input_shape` = (C, H, W) images in [0, 1] and `num_classes` outputs.

    `width` scales channel counts (a multiplier; for `wrn28` it is the widen factor k).
    Raises `ValueError` naming the bad argument (the config layer names key paths).
    """
    if arch not in MODELS:
        raise ValueError(f"arch: unknown {arch!r}; allowed: {', '.join(list_models())}")
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, Real) or not width > 0:
            raise ValueError(f"width must be a positive number or None, got {width!r}")
        width = float(width)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    mean_t, std_t = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean_t) not in (1, shape[0]) or len(std_t) != len(mean_t):
        raise ValueError(
            f"mean/std need 1 or {shape[0]} values each, got {len(mean_t)} and {len(std_t)}"
        )
    spec = ImageSpec(
        num_classes=num_classes,
        input_shape=shape,  # type: ignore[arg-type]
        mean=mean_t,
        std=std_t,
    )
    return MODELS[arch](spec, width)
