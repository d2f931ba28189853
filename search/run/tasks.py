"""What the driver's Ray tasks (dense models, finalists) and the trainable share."""

from __future__ import annotations

__all__ = ["use_assigned_cpus", "failure_line"]


def use_assigned_cpus() -> None:
    """Torch should use the CPUs Ray gave this task or trial, not every core of the node."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))


def failure_line(exc: BaseException) -> str:
    """`Type: first line` of what failed a Ray task (its cause, not Ray's wrapper)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
