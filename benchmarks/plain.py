"""The plain PyTorch baseline of the benchmarks: the textbook loops robprune is compared with.

fp32, NCHW, a `DataLoader` over a float `TensorDataset` (with worker processes when asked),
attacks written with `x.requires_grad_()` and `loss.backward()` (parameter gradients computed
on every attack step and thrown away), the reference TRADES and MART formulas, and a
`.item()` per step for the loss (the usual running-loss print). Same model, batch size, attack
steps and number of optimizer steps as robprune's side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["plain_epoch", "plain_loader", "plain_pgd", "plain_robust_accuracy"]


def plain_loader(
    x: torch.Tensor, y: torch.Tensor, *, batch_size: int, workers: int, shuffle: bool
) -> DataLoader:
    """Float images on the host, batches collated by the DataLoader (pinned when on CUDA)."""
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=shuffle,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def plain_pgd(model, x, y, eps, alpha, steps, start="uniform"):
    """Textbook L-inf PGD: backward through everything, sign step, clamp to the ball."""
    was_training = model.training
    model.eval()
    if start == "uniform":
        delta = torch.empty_like(x).uniform_(-eps, eps)
    else:
        delta = 0.001 * torch.randn_like(x)
    x_adv = (x + delta).clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()  # textbook: populates parameter grads too
        with torch.no_grad():
            x_adv = x_adv + alpha * x_adv.grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.train(was_training)
    return x_adv.detach()


def _trades_plain(model, x, eps, alpha, steps):
    model.eval()
    p_nat = F.softmax(model(x), dim=1).detach()
    x_adv = (x + 0.001 * torch.randn_like(x)).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_nat, reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]  # the reference TRADES code does this
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    model.train()
    return x_adv.detach()


def _loss(method, model, x, y, eps, alpha, steps, beta):
    if method == "ce":
        return F.cross_entropy(model(x), y)
    if method == "pgd_at":
        return F.cross_entropy(model(plain_pgd(model, x, y, eps, alpha, steps)), y)
    if method == "fgsm_rs":
        return F.cross_entropy(model(plain_pgd(model, x, y, eps, 1.25 * eps, 1)), y)
    if method == "trades":
        x_adv = _trades_plain(model, x, eps, alpha, steps)
        logits = model(x)
        kl = F.kl_div(
            F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
        )
        return F.cross_entropy(logits, y) + beta * kl
    # mart (reference code)
    x_adv = plain_pgd(model, x, y, eps, alpha, steps, start="gauss")
    logits, logits_adv = model(x), model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(
        torch.log(1.0001 - adv_probs + 1e-12), new_y
    )
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, y.unsqueeze(1).long()).squeeze()
    kl = torch.sum(F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none"), 1)
    return loss_adv + beta * (kl * (1.0000001 - true_probs)).mean()


def plain_epoch(method, model, loader, opt, device, eps, alpha, steps, beta=6.0) -> float:
    """One epoch of the textbook loop; returns the mean loss (read with `.item()` per step)."""
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = _loss(method, model, x, y, eps, alpha, steps, beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        n += 1
    return total / max(n, 1)


def plain_robust_accuracy(model: nn.Module, loader, device, attack) -> float:
    """Accuracy under `attack(model, x, y) -> x_adv`, counted with `.item()` per batch."""
    model.eval()
    correct, n = 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        x_adv = attack(model, x, y)
        with torch.no_grad():
            correct += (model(x_adv).argmax(1) == y).sum().item()
        n += len(y)
    return correct / max(n, 1)
