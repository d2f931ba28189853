"""Seconds per fine-tuning epoch, robprune's loop against a plain-PyTorch loop, same work.

The baseline is the textbook loop: a DataLoader over a TensorDataset, PGD written with
`x.requires_grad_()` and `loss.backward()` (so parameter gradients are computed on every attack
step and thrown away), reference TRADES/MART formulas. Both sides run the same model, batch
size, attack steps and number of optimizer steps, in the same process, alternating, and the
median of the repeats is reported with the ratio baseline / robprune (> 1: robprune faster).

    python benchmarks/bench_finetune.py [--device cuda] [--repeats 3] [--workloads digits ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from robprune.data import load_data, to_float
from robprune.models import create_model
from robprune.training import AdversarialSetting, Trainer

METHODS = ("ce", "pgd_at", "trades", "mart", "fgsm_rs")
WORKLOADS = {
    # name: (dataset, synthetic spec, arch, width, batch, eps, step, steps)
    "digits": ("digits", None, "small_cnn", None, 64, 0.1, 0.025, 10),
    "synthetic32": (
        "synthetic",
        {"shape": [3, 32, 32], "num_classes": 10, "train_size": 1024, "test_size": 64},
        "vgg_small",
        None,
        128,
        8 / 255,
        2 / 255,
        10,
    ),
    "resnet18": (
        "synthetic",
        {"shape": [3, 32, 32], "num_classes": 10, "train_size": 2560, "test_size": 64},
        "resnet18",
        None,
        128,
        8 / 255,
        2 / 255,
        10,
    ),
}


def _pgd_plain(model, x, y, eps, alpha, steps, start="uniform"):
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
    model.train()
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


def plain_epoch(method, model, loader, opt, eps, alpha, steps, beta=6.0):
    model.train()
    for x, y in loader:
        if method == "ce":
            loss = F.cross_entropy(model(x), y)
        elif method == "pgd_at":
            loss = F.cross_entropy(model(_pgd_plain(model, x, y, eps, alpha, steps)), y)
        elif method == "fgsm_rs":
            loss = F.cross_entropy(model(_pgd_plain(model, x, y, eps, 1.25 * eps, 1)), y)
        elif method == "trades":
            x_adv = _trades_plain(model, x, eps, alpha, steps)
            logits = model(x)
            kl = F.kl_div(
                F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
            )
            loss = F.cross_entropy(logits, y) + beta * kl
        else:  # mart
            x_adv = _pgd_plain(model, x, y, eps, alpha, steps, start="gauss")
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
            loss = loss_adv + beta * (kl * (1.0000001 - true_probs)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(workload: str, method: str, device: torch.device, repeats: int) -> tuple[float, float]:
    dataset, synthetic, arch, width, batch, eps, alpha, steps = WORKLOADS[workload]
    data = load_data(dataset, synthetic=synthetic)

    def model_():
        torch.manual_seed(0)
        return create_model(
            arch,
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            mean=data.mean,
            std=data.std,
            width=width,
        ).to(device)

    ours_model = model_()
    trainer = Trainer(
        model=ours_model,
        train=data.train.to(device),
        method=method,
        epochs=100,
        lr=0.01,
        schedule="constant",
        warmup_epochs=0,
        batch_size=batch,
        weight_decay=5e-4,
        momentum=0.9,
        augment=False,
        device=device,
        seed=0,
        adversarial=AdversarialSetting(epsilon=eps, step_size=alpha, steps=steps),
    )
    plain_model = model_()
    x = to_float(data.train.x).to(device)
    y = data.train.y.to(device)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, drop_last=True)
    opt = torch.optim.SGD(plain_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ours, plain = [], []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        trainer.run_epoch()
        _sync(device)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain_epoch(method, plain_model, loader, opt, eps, alpha, steps)
        _sync(device)
        plain.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workloads", nargs="+", default=["digits", "synthetic32"], choices=sorted(WORKLOADS)
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"{'workload':<12} {'method':<8} {'robprune s':>10} {'plain s':>9} {'ratio':>6}")
    for workload in args.workloads:
        for method in args.methods:
            ours, plain = bench(workload, method, device, args.repeats)
            print(
                f"{workload:<12} {method:<8} {ours:>10.3f} {plain:>9.3f} {plain / ours:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
