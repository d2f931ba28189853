"""Training objectives, keyed by name: the fine-tuning methods of docs/architecture.md.

Each objective maps a clean batch to a scalar loss on a model in train mode. Adversarial
examples come from `robprune.attacks`, in [0,1] pixel space. The model's mode while they are
generated is `AdversarialSetting.attack_bn`: `train` (batch statistics, running statistics
updated by the attack's forward passes) as the reference PGD-AT (Madry et al., Rice et al.)
and fast-AT (Wong et al.) code do, or `eval` (running statistics) as the TRADES and MART code
do. The config resolves each method's reference (`robprune.config.names.ATTACK_BN_REFERENCE`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robprune import attacks
from robprune.attacks import eval_mode
from robprune.config import names
from robprune.config.names import ATTACK_BN, check_registry

__all__ = [
    "ATTACK_BN",
    "AdversarialSetting",
    "OBJECTIVES",
    "objective",
    "pgd_examples",
    "trades_examples",
]


@dataclass(frozen=True, kw_only=True)
class AdversarialSetting:
    """The threat model used while training."""

    epsilon: float
    """Perturbation budget (L-inf or L2 radius) in [0,1] pixel units."""
    step_size: float
    """PGD step size."""
    steps: int
    """PGD steps per training example."""
    norm: str = "linf"
    """Norm of the ball."""
    beta: float = 6.0
    """TRADES / MART regulariser weight."""
    attack_bn: str = "eval"
    """Mode of the model while the examples are generated: train | eval (the config resolves
    each method's reference: train for pgd_at and fgsm_rs, eval for trades and mart)."""

    def __post_init__(self) -> None:
        if self.attack_bn not in ATTACK_BN:
            raise ValueError(f"attack_bn {self.attack_bn!r}; allowed: {', '.join(ATTACK_BN)}")


Objective = Callable[
    [nn.Module, Tensor, Tensor, AdversarialSetting, torch.Generator | None], Tensor
]


def _ce(
    model: nn.Module, x: Tensor, y: Tensor, adv: AdversarialSetting, gen: torch.Generator | None
) -> Tensor:
    return F.cross_entropy(model(x), y)


def pgd_examples(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    adv: AdversarialSetting,
    gen: torch.Generator | None,
    *,
    keep_mode: bool = False,
) -> Tensor:
    """Madry et al.'s training examples: PGD from a random start in the training threat
    (eval mode unless `keep_mode`)."""
    return attacks.pgd(
        model,
        x,
        y,
        epsilon=adv.epsilon,
        step_size=adv.step_size,
        steps=adv.steps,
        norm=adv.norm,
        random_start=True,
        generator=gen,
        keep_mode=keep_mode,
    )


def _pgd_at(
    model: nn.Module, x: Tensor, y: Tensor, adv: AdversarialSetting, gen: torch.Generator | None
) -> Tensor:
    x_adv = pgd_examples(model, x, y, adv, gen, keep_mode=adv.attack_bn == "train")
    return F.cross_entropy(model(x_adv), y)


def _fgsm_rs(
    model: nn.Module, x: Tensor, y: Tensor, adv: AdversarialSetting, gen: torch.Generator | None
) -> Tensor:
    # Wong et al. 2020: random start in the ball and one step of 1.25 eps, projected back.
    # In L2 the same recipe with a unit-L2 gradient step and an L2 start (attacks.fgsm).
    x_adv = attacks.fgsm(
        model,
        x,
        y,
        epsilon=adv.epsilon,
        step_size=1.25 * adv.epsilon,
        random_start=True,
        norm=adv.norm,
        generator=gen,
        keep_mode=adv.attack_bn == "train",
    )
    return F.cross_entropy(model(x_adv), y)


def trades_examples(
    model: nn.Module,
    x: Tensor,
    *,
    adv: AdversarialSetting,
    generator: torch.Generator | None = None,
) -> Tensor:
    """TRADES inner maximisation: maximise KL(f(x') || f(x)) from a tiny Gaussian start."""
    with nullcontext() if adv.attack_bn == "train" else eval_mode(model):
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)
            # drawn where the generator lives: a CPU draw copied to CUDA would wait for the queue
            rdev = generator.device if generator is not None else x.device
            noise = torch.randn(x.shape, generator=generator, device=rdev).to(x.device)
            x_adv = (x + 0.001 * noise).clamp_(0, 1)
        for _ in range(adv.steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            with torch.no_grad():
                x_adv = attacks.project_step(
                    x_adv.detach(),
                    grad,
                    x,
                    epsilon=adv.epsilon,
                    step_size=adv.step_size,
                    norm=adv.norm,
                )
    return x_adv.detach()


def _trades(
    model: nn.Module, x: Tensor, y: Tensor, adv: AdversarialSetting, gen: torch.Generator | None
) -> Tensor:
    x_adv = trades_examples(model, x, adv=adv, generator=gen)
    # Separate forward passes, as in the reference code: one concatenated batch would mix
    # clean and adversarial BatchNorm statistics and change the method.
    logits_clean, logits_adv = model(x), model(x_adv)
    kl = F.kl_div(
        F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean"
    )
    return F.cross_entropy(logits_clean, y) + adv.beta * kl


def _mart(
    model: nn.Module, x: Tensor, y: Tensor, adv: AdversarialSetting, gen: torch.Generator | None
) -> Tensor:
    # Wang et al. 2020 (MART): boosted CE on adversarial examples plus a KL term weighted by
    # how badly the clean example is classified.
    x_adv = pgd_examples(model, x, y, adv, gen, keep_mode=adv.attack_bn == "train")
    logits_clean, logits_adv = model(x), model(x_adv)  # separate BN batches, as MART does
    probs_adv = F.softmax(logits_adv, dim=1)
    top2 = probs_adv.topk(2, dim=1).indices
    runner_up = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(
        torch.log(1.0001 - probs_adv + 1e-12), runner_up
    )
    probs_clean = F.softmax(logits_clean, dim=1)
    p_true = probs_clean.gather(1, y[:, None]).squeeze(1)
    kl = (probs_clean * (torch.log(probs_clean + 1e-12) - torch.log(probs_adv + 1e-12))).sum(1)
    return loss_adv + adv.beta * (kl * (1.0000001 - p_true)).mean()


OBJECTIVES: dict[str, Objective] = {
    "ce": _ce,
    "pgd_at": _pgd_at,
    "trades": _trades,
    "mart": _mart,
    "fgsm_rs": _fgsm_rs,
}
check_registry("training objective", names.TRAINING_METHODS, OBJECTIVES)


def objective(method: str) -> Objective:
    try:
        return OBJECTIVES[method]
    except KeyError:
        allowed = ", ".join(sorted(OBJECTIVES))
        raise ValueError(f"unknown training method {method!r}; allowed: {allowed}") from None
