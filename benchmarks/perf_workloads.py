"""The workloads `bench_perf.py` times (model, synthetic data, robprune's trainer) and the
clocks it times them with."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from robprune.config import TrainRecipe
from robprune.data import load_data
from robprune.models import create_model
from robprune.training import AdversarialSetting, Trainer

__all__ = [
    "METHODS", "PEAKS", "WORKLOADS", "Workload", "clock", "make_data", "make_model",
    "make_trainer", "passes_per_example", "peak_flops", "progress", "sync", "timed",
]  # fmt: skip

METHODS = ("ce", "pgd_at", "trades", "mart", "fgsm_rs")
#: bf16 dense matrix-product peak (FLOP/s) by GPU name; the CPU has none listed.
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


@dataclass(frozen=True, kw_only=True)
class Workload:
    arch: str
    width: float | None
    train: int
    test: int
    batch: int
    eval_batch: int
    steps: int = 10
    apgd_steps: int = 100
    eps: float = 8 / 255
    alpha: float = 2 / 255


WORKLOADS = {
    "small": Workload(
        arch="small_cnn", width=0.5, train=256, test=128, batch=64, eval_batch=128, apgd_steps=20
    ),
    "resnet18": Workload(
        arch="resnet18", width=None, train=50_000, test=10_000, batch=512, eval_batch=1000
    ),
}


def make_data(w: Workload):
    spec = {"shape": [3, 32, 32], "num_classes": 10, "train_size": w.train, "test_size": w.test}
    return load_data("synthetic", synthetic=spec, val_fraction=0.02)


def make_model(w: Workload, data, device):
    torch.manual_seed(0)
    return create_model(
        w.arch,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        mean=data.mean,
        std=data.std,
        width=w.width,
    ).to(device)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device):
    """Wall time on CUDA; on CPU the process's CPU time, which other processes on a shared
    machine barely disturb (run with OMP_NUM_THREADS=1, so no thread spins while waiting)."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def timed(fn, device) -> float:
    now = clock(device)
    sync(device)
    t = now()
    fn()
    sync(device)
    return now() - t


def make_trainer(w, data, method, device, runtime):
    return Trainer(
        recipe=TrainRecipe(method=method, epochs=1000, schedule="constant", batch_size=w.batch),
        model=make_model(w, data, device),
        train=data.train,
        augment=False,
        device=device,
        seed=0,
        adversarial=AdversarialSetting(epsilon=w.eps, step_size=w.alpha, steps=w.steps),
        runtime=runtime,
    )


def passes_per_example(method: str, steps: int) -> float:
    """Forward-pass equivalents per training example: an attack step is a forward and an
    input backward (2), a training pass forward + backward (3), a no-grad forward 1."""
    return {
        "ce": 3,
        "pgd_at": 2 * steps + 3,
        "fgsm_rs": 2 + 3,
        "trades": 1 + 2 * steps + 6,
        "mart": 2 * steps + 6,
    }[method]


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)
