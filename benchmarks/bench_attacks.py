"""PGD-10 speed: `robprune.attacks.pgd` against a textbook PyTorch loop, in the same run.

The textbook loop calls `loss.backward()` on an input with `requires_grad` while the
parameters require grad too, so autograd also computes (and accumulates) weight gradients;
ours takes `torch.autograd.grad` w.r.t. the input only and steps in place. A third line times
ours with the parameters frozen (`requires_grad_(False)`), the floor for input-only gradients.

    python benchmarks/bench_attacks.py [--batch 128] [--steps 10] [--repeats 5] [--arch cnn]

Runs on CPU, and on CUDA too when available. Prints seconds per PGD call and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from robprune import attacks


def _cnn(num_classes: int = 10) -> nn.Module:
    """A VGG-style CIFAR CNN with BatchNorm (about 1.1 M parameters)."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 64),
        *block(64, 64),
        nn.MaxPool2d(2),
        *block(64, 128),
        *block(128, 128),
        nn.MaxPool2d(2),
        *block(128, 256),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, num_classes),
    )


def _model(arch: str) -> nn.Module:
    if arch == "cnn":
        return _cnn()
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def textbook_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    start: torch.Tensor,
) -> torch.Tensor:
    """The loop found in most tutorials: backward() through everything, then a sign step."""
    model.eval()
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        with torch.no_grad():
            x_adv = x_adv + step_size * x_adv.grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
        x_adv = x_adv.detach()
    model.zero_grad(set_to_none=True)
    return x_adv


def _time(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(device: torch.device, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = _model(args.arch).to(device).eval()
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, step = 8 / 255, 2 / 255
    start = attacks.project(x + torch.empty_like(x).uniform_(-eps, eps), x, epsilon=eps)
    kw = {"epsilon": eps, "step_size": step, "steps": args.steps}

    # Sanity check without a random start: both loops take the same steps.
    ours_out = attacks.pgd(model, x, y, random_start=False, **kw)
    ref_out = textbook_pgd(model, x, y, start=x, **kw)
    # Mean vs summed loss can flip the sign of a near-zero gradient entry now and then.
    differ = ((ours_out - ref_out).abs() > 1e-6).float().mean().item()

    t_ref = _time(lambda: textbook_pgd(model, x, y, start=start, **kw), device, args.repeats)
    t_ours = _time(lambda: attacks.pgd(model, x, y, **kw), device, args.repeats)
    model.requires_grad_(False)
    t_frozen = _time(lambda: attacks.pgd(model, x, y, **kw), device, args.repeats)
    model.requires_grad_(True)

    name = f"{device.type} {args.arch} batch {args.batch} PGD-{args.steps}"
    if device.type == "cpu":
        name += f" ({torch.get_num_threads()} threads)"
    print(f"{name}:")
    print(f"  textbook (backward, param grads): {t_ref * 1e3:8.1f} ms")
    print(
        f"  robprune.attacks.pgd:             {t_ours * 1e3:8.1f} ms   "
        f"speed-up x{t_ref / t_ours:.2f}"
    )
    print(
        f"  robprune, params frozen:          {t_frozen * 1e3:8.1f} ms   "
        f"speed-up x{t_ref / t_frozen:.2f}"
    )
    print(f"  (sanity, no random start: {differ:.2e} of the entries differ between the loops)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arch", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    bench(torch.device("cpu"), args)
    if torch.cuda.is_available() and not args.cpu_only:
        bench(torch.device("cuda"), args)


if __name__ == "__main__":
    main()
