"""FGSM and PGD (L-inf, L2), plus the helpers every attack shares.

Conventions of all attacks in this package:
- inputs are [0, 1] pixels (models normalise inside); every output lies in [0, 1] and in the
  epsilon ball around the input;
- the model runs in eval mode during the attack and gets its previous mode back afterwards,
  also when the attack raises; `pgd`/`fgsm` with `keep_mode=True` leave the mode alone, for
  adversarial training that generates its examples in train mode as the reference PGD-AT and
  fast-AT code do (BatchNorm then uses and updates batch statistics);
- gradients are taken with `torch.autograd.grad` with respect to the input only: parameters
  get no `.grad`, and autograd skips the weight-gradient kernels (the speed of the hot loop);
- the step loop has no host synchronisation (no `.item()`, no boolean indexing);
- under bf16 autocast (robprune.runtime on CUDA) only the model's matrix products run in bf16:
  the perturbed input stays fp32 (the leaf of the input gradient, so the gradient arrives as
  fp32), the loss is computed from logits cast to fp32 (CE would be anyway; the CW margin and
  DLR would not), and the step and projection are fp32 element-wise ops outside autocast's
  reach. bf16 has fp32's exponent range, so input gradients do not underflow to zero and sign
  steps see the same directions up to bf16 rounding of near-zero entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn

from robprune.config.names import NORMS

from .losses import LossFn, get_loss

__all__ = ["NORMS", "eval_mode", "fgsm", "input_grad", "pgd", "project", "project_step"]

_L2_DIV = 1e-10  # guards the L2 normalisation of a zero gradient


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each one's own flag on exit (even on error).

    Flags are restored per module, so a model that was deliberately mixed (e.g. frozen
    BatchNorm inside a training model) comes back exactly as it was.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def _check(epsilon: float, norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")


def _dims(x: Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.dim()))


def _draw(
    kind: str,
    shape: torch.Size,
    like: Tensor,
    generator: torch.Generator | None,
    low: float = 0.0,
    high: float = 1.0,
) -> Tensor:
    """Random tensor drawn on the generator's device (so a CPU generator gives the same numbers
    whatever device `like` is on), then moved to `like`'s device."""
    device = like.device if generator is None else generator.device
    if shape == like.shape:  # keep the input's memory format (channels_last on CUDA)
        out = torch.empty_like(like, device=device)
    else:
        out = torch.empty(shape, dtype=like.dtype, device=device)
    if kind == "uniform":
        out.uniform_(low, high, generator=generator)
    else:
        out.normal_(generator=generator)
    return out.to(like.device)


def input_grad(
    model: nn.Module, x_adv: Tensor, y: Tensor, loss_fn: LossFn
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradient of the summed per-example loss w.r.t. the input only.

    Returns (grad, logits, per-example loss), the last two detached. Runs under
    `enable_grad` so callers may sit inside `no_grad` (evaluation code).
    """
    leaf = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(leaf).float()
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return grad, logits.detach(), loss.detach()


def _step_(adv: Tensor, grad: Tensor, step_size: float, norm: str) -> Tensor:
    """In place: one steepest-ascent step (sign for L-inf, unit L2 direction for L2)."""
    if norm == "linf":
        return adv.add_(grad.sign_(), alpha=step_size)
    gnorm = torch.linalg.vector_norm(grad, dim=_dims(grad), keepdim=True).add_(_L2_DIV)
    return adv.add_(grad.div_(gnorm), alpha=step_size)


def _project_(adv: Tensor, x: Tensor, epsilon: float, norm: str) -> Tensor:
    """In place: project `adv` onto the epsilon ball around `x`, then into [0, 1]."""
    delta = adv.sub_(x)
    if norm == "linf":
        delta.clamp_(-epsilon, epsilon)
    else:
        dnorm = torch.linalg.vector_norm(delta, dim=_dims(delta), keepdim=True)
        delta.mul_(torch.clamp(epsilon / dnorm, max=1.0))
    return delta.add_(x).clamp_(0.0, 1.0)


@torch.no_grad()
def project(x_adv: Tensor, x: Tensor, *, epsilon: float, norm: str = "linf") -> Tensor:
    """`x_adv` projected onto the epsilon ball around `x` and into [0, 1] (a new tensor)."""
    _check(epsilon, norm)
    return _project_(x_adv.detach().clone(), x, epsilon, norm)


@torch.no_grad()
def project_step(
    x_adv: Tensor, grad: Tensor, x: Tensor, *, epsilon: float, step_size: float, norm: str = "linf"
) -> Tensor:
    """One projected ascent step for hand-written inner loops (TRADES); inputs are untouched."""
    _check(epsilon, norm)
    adv = _step_(x_adv.detach().clone(), grad.detach().clone(), step_size, norm)
    return _project_(adv, x, epsilon, norm)


@torch.no_grad()
def _random_start(
    x: Tensor, epsilon: float, norm: str, generator: torch.Generator | None
) -> Tensor:
    """Uniform in the L-inf cube; for L2 a Gaussian direction scaled to radius U(0,1)*eps
    (Madry et al.'s and torchattacks' start, not uniform in the ball)."""
    if norm == "linf":
        noise = _draw("uniform", x.shape, x, generator, -epsilon, epsilon)
        return noise.add_(x).clamp_(0.0, 1.0)
    delta = _draw("normal", x.shape, x, generator)
    dnorm = torch.linalg.vector_norm(delta, dim=_dims(delta), keepdim=True)
    radius = _draw("uniform", dnorm.shape, x, generator)
    delta.mul_(radius / dnorm * epsilon)
    return delta.add_(x).clamp_(0.0, 1.0)


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    step_size: float | None = None,
    random_start: bool = False,
    norm: str = "linf",
    loss: str | LossFn = "ce",
    generator: torch.Generator | None = None,
    keep_mode: bool = False,
) -> Tensor:
    """Fast gradient sign method (Goodfellow et al.): one step of `step_size`.

    Default step: epsilon, or 1.25 * epsilon with `random_start` (Wong et al.'s fast AT,
    `fgsm_rs`), whose step from a random start is then projected back onto the ball.
    With `norm="l2"` this is the fast gradient method (unit-L2 step).
    """
    return pgd(
        model,
        x,
        y,
        epsilon=epsilon,
        step_size=step_size
        if step_size is not None
        else (1.25 * epsilon if random_start else epsilon),
        steps=1,
        norm=norm,
        random_start=random_start,
        loss=loss,
        generator=generator,
        keep_mode=keep_mode,
    )


def _pgd_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epsilon: float,
    step_size: float,
    steps: int,
    norm: str,
    random_start: bool,
    loss_fn: LossFn,
    generator: torch.Generator | None,
) -> Tensor:
    adv = _random_start(x, epsilon, norm, generator) if random_start else x.clone()
    for _ in range(steps):
        grad, _, _ = input_grad(model, adv, y, loss_fn)
        with torch.no_grad():
            _project_(_step_(adv, grad, step_size, norm), x, epsilon, norm)
    return adv


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    loss: str | LossFn = "ce",
    generator: torch.Generator | None = None,
    keep_mode: bool = False,
) -> Tensor:
    """Projected gradient descent (Madry et al.) on `loss`; returns the last iterate.

    The model runs in eval mode unless `keep_mode` (then in whatever mode it is in).
    With `restarts > 1` each example keeps its worst case: the first restart that
    misclassifies it (later restarts run only on examples still correct), else the final point
    with the highest loss. `loss` may be a callable `(logits, y) -> [B]`; `y` is passed
    through to it (it need not be labels; restarts then compare losses only).
    """
    _check(epsilon, norm)
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1, got {steps} and {restarts}")
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 need random_start=True (the runs would be identical)")
    loss_fn = get_loss(loss)
    x = x.detach()
    with nullcontext(model) if keep_mode else eval_mode(model):
        if restarts == 1:
            return _pgd_run(
                model, x, y, epsilon, step_size, steps, norm, random_start, loss_fn, generator
            )
        labels = not y.is_floating_point()
        adv = x.clone()
        best = torch.full((x.shape[0],), float("-inf"), device=x.device)
        broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(restarts):
            idx = (~broken).nonzero().squeeze(1)  # one sync per restart, not per step
            if idx.numel() == 0:
                break
            xs, ys = x[idx], y[idx]
            run = _pgd_run(
                model, xs, ys, epsilon, step_size, steps, norm, True, loss_fn, generator
            )
            with torch.no_grad():
                logits = model(run).float()
                value = loss_fn(logits, ys)
                fooled = (
                    logits.argmax(dim=1) != ys if labels else torch.zeros_like(value, dtype=bool)
                )
                take = fooled | (value > best[idx])
                adv[idx] = torch.where(take.view(-1, *[1] * (x.dim() - 1)), run, adv[idx])
                best[idx] = torch.where(take, value, best[idx])
                broken[idx] = fooled
        return adv
