"""APGD-CE and APGD-T (Croce & Hein 2020, "Reliable evaluation of adversarial robustness...").

Follows the reference implementation (fra31/auto-attack, `autopgd_base.py`) step for step:
initial step 2*eps, momentum 0.75, checkpoints every p_j iterations with
p = (0.22, -0.03 per checkpoint, floor 0.06) * steps; at a checkpoint an example halves its step
and restarts from its best point when fewer than rho = 0.75 of the steps since the last
checkpoint increased the loss, or when the best loss did not improve and the step was not
reduced at the previous checkpoint. Only examples still correctly classified are attacked by
each restart (and each target class of APGD-T). Differences from the reference: the step loop
is vectorised with masks instead of index lists (no host sync per step), random draws come from
an optional `torch.Generator`, and examples never broken return their highest-loss point
instead of the clean input (both count as robust).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from .core import _check, _dims, _draw, eval_mode, input_grad
from .losses import LossFn, dlr_targeted_loss, get_loss

__all__ = ["apgd", "apgd_targeted"]

_MOMENTUM = 0.75


def _l2_normalize(v: Tensor) -> Tensor:
    return v / (torch.linalg.vector_norm(v, dim=_dims(v), keepdim=True) + 1e-12)


def _l2_ball(x: Tensor, v: Tensor, epsilon: float) -> Tensor:
    """The reference L2 projection: x + normalize(v - x) * min(eps, ||v - x||), in [0, 1]."""
    d = v - x
    dnorm = torch.linalg.vector_norm(d, dim=_dims(d), keepdim=True)
    return (x + _l2_normalize(d) * torch.clamp(dnorm, max=epsilon)).clamp_(0.0, 1.0)


def _random_start(
    x: Tensor, epsilon: float, norm: str, generator: torch.Generator | None
) -> Tensor:
    """A uniform point of the L-inf ball, or a random direction on the L2 sphere, in [0, 1]."""
    if norm == "linf":
        t = _draw("uniform", x.shape, x, generator).mul_(2).sub_(1)
        x_adv = x + epsilon * t / t.abs().amax(dim=_dims(t), keepdim=True)
    else:
        t = _draw("normal", x.shape, x, generator)
        x_adv = x + epsilon * _l2_normalize(t)
    return x_adv.clamp_(0.0, 1.0)


def _step(
    x: Tensor,
    x_adv: Tensor,
    x_adv_old: Tensor,
    grad: Tensor,
    step_size: Tensor,
    a: float,
    epsilon: float,
    norm: str,
    box: tuple[Tensor, Tensor],
) -> Tensor:
    """One projected step along the gradient, then the momentum mix (weight `a` on the step);
    `box` is the L-inf ball intersected with [0, 1]."""
    momentum = x_adv - x_adv_old
    if norm == "linf":
        lo, hi = box
        z = torch.clamp(x_adv + step_size * torch.sign(grad), lo, hi)
        return torch.clamp(x_adv + (z - x_adv) * a + momentum * (1 - a), lo, hi)
    z = _l2_ball(x, x_adv + step_size * _l2_normalize(grad), epsilon)
    return _l2_ball(x, x_adv + (z - x_adv) * a + momentum * (1 - a), epsilon)


def _increases(loss_steps: Tensor, i: int, k: int) -> Tensor:
    """Per example, how many of the last k steps increased the loss. Reference quirk kept: at
    the first checkpoint the window reaches back to row -1 of loss_steps (still zero), as in
    auto-attack's check_oscillation."""
    increases = torch.zeros(loss_steps.shape[1], device=loss_steps.device)
    for c in range(k):
        increases += (loss_steps[i - c] > loss_steps[i - c - 1]).float()
    return increases


def _single_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    run: _Run,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run. Returns (best-loss point, still-correct mask, last misclassified iterate)."""
    epsilon, norm, steps = run.epsilon, run.norm, run.steps
    n = x.shape[0]
    view = (n,) + (1,) * (x.dim() - 1)
    k, k_min, k_decr = (max(int(f * steps), 1) for f in (0.22, 0.06, 0.03))
    with torch.no_grad():
        x_adv = _random_start(x, epsilon, norm, generator)
        box = (x - epsilon).clamp_(min=0.0), (x + epsilon).clamp_(max=1.0)
    x_best_adv = x_adv.clone()
    loss_steps = torch.zeros(steps, n, device=x.device)
    grad, logits, loss = input_grad(model, x_adv, y, loss_fn)
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
    correct = logits.argmax(dim=1) == y
    step_size = torch.full(view, 2.0 * epsilon, device=x.device, dtype=x.dtype)
    x_adv_old = x_adv
    since_check = 0
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(n, dtype=torch.bool, device=x.device)
    for i in range(steps):
        with torch.no_grad():
            a = _MOMENTUM if i > 0 else 1.0
            x_new = _step(x, x_adv, x_adv_old, grad, step_size, a, epsilon, norm, box)
            x_adv, x_adv_old = x_new, x_adv
        grad, logits, loss = input_grad(model, x_adv, y, loss_fn)
        with torch.no_grad():
            pred_ok = logits.argmax(dim=1) == y
            correct &= pred_ok
            x_best_adv = torch.where(pred_ok.view(view), x_best_adv, x_adv)
            loss_steps[i] = loss
            better = loss > loss_best
            x_best = torch.where(better.view(view), x_adv, x_best)
            grad_best = torch.where(better.view(view), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            since_check += 1
            if since_check == k:
                reduce = _increases(loss_steps, i, k) <= k * run.rho
                reduce |= ~reduced_last_check & (loss_best_last_check >= loss_best)
                reduced_last_check = reduce
                loss_best_last_check = loss_best.clone()
                step_size = torch.where(reduce.view(view), step_size / 2.0, step_size)
                x_adv = torch.where(reduce.view(view), x_best, x_adv)
                grad = torch.where(reduce.view(view), grad_best, grad)
                since_check = 0
                k = max(k - k_decr, k_min)
    return x_best, correct, x_best_adv


@dataclass(frozen=True, kw_only=True)
class _Run:
    """The budget of an APGD attack: radius and norm, steps per run, restarts, and rho (the
    fraction of loss increases below which a checkpoint halves the step)."""

    epsilon: float
    norm: str
    steps: int
    restarts: int
    rho: float


def _run_all(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    run: _Run,
    *,
    loss: str | LossFn | None,
    num_targets: int,
    generator: torch.Generator | None,
) -> Tensor:
    _check(run.epsilon, run.norm)
    if run.steps < 1 or run.restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1, got {run.steps} and {run.restarts}")
    x = x.detach()
    view = (-1,) + (1,) * (x.dim() - 1)
    with eval_mode(model):
        with torch.no_grad():
            logits = model(x)
        robust = logits.argmax(dim=1) == y
        adv = x.clone()
        # Untargeted: one pass with rank None. Targeted: the 2nd..(T+1)-th most likely classes.
        ranks: list[int | None] = [None]
        if loss is None:
            ranks = list(range(2, min(num_targets, logits.shape[1] - 1) + 2))
        for rank in ranks:
            for _ in range(run.restarts):
                idx = robust.nonzero().squeeze(1)  # one sync per run, not per step
                if idx.numel() == 0:
                    return adv
                xs, ys = x[idx], y[idx]
                if rank is None:
                    loss_fn = get_loss(loss)  # type: ignore[arg-type]
                else:
                    with torch.no_grad():
                        y_target = model(xs).sort(dim=1)[1][:, -rank]
                    loss_fn = partial(dlr_targeted_loss, y_target=y_target)
                best, still, fooled_at = _single_run(model, xs, ys, loss_fn, run, generator)
                adv[idx] = torch.where(still.view(view), best, fooled_at)
                robust[idx] = still
    return adv


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    loss: str | LossFn = "ce",
    rho: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Untargeted APGD on `loss` (`ce` for APGD-CE, `dlr` for APGD-DLR)."""
    run = _Run(epsilon=epsilon, norm=norm, steps=steps, restarts=restarts, rho=rho)
    return _run_all(model, x, y, run, loss=loss, num_targets=0, generator=generator)


def apgd_targeted(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    num_targets: int = 9,
    rho: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """APGD-T: APGD on the targeted DLR loss towards each of the `num_targets` most likely
    wrong classes in turn (fewer when the model has fewer classes), on the examples still
    robust."""
    run = _Run(epsilon=epsilon, norm=norm, steps=steps, restarts=restarts, rho=rho)
    return _run_all(model, x, y, run, loss=None, num_targets=num_targets, generator=generator)
