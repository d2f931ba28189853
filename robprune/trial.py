"""One trial end to end (DESIGN §2): dense -> MRS -> ratios -> prune -> fine-tune -> evaluate.

Plain PyTorch, no Ray: the search wraps `run_trial` and gives it an `on_epoch` callback that
reports metrics and saves checkpoints; a trial given such a checkpoint continues after it.
Model selection is on the validation split carved from training data; the test split is
evaluated once, at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

import robprune
from robprune import attacks
from robprune.cache import atomic_torch_save, atomic_write_json
from robprune.config import TrialConfig, parse_trial_config
from robprune.data import DataSplits, TensorSplit, to_float
from robprune.dense import DenseModel, build_model, ensure_dense, load_trial_data
from robprune.errors import BadInput
from robprune.evaluation import accuracy_under, evaluate
from robprune.models.serialization import load_pruned_state_dict, pruned_state_dict
from robprune.pruning import count_macs_params, module_robust_sensitivity, prune_model
from robprune.runtime import resolve_device, seed_everything
from robprune.training.losses import AdversarialSetting
from robprune.training.trainer import Trainer

__all__ = ["EpochReport", "TrialResult", "run_trial", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "trial_state.pt"
_CHECKPOINT_FORMAT = "robprune.trial-checkpoint/1"


@dataclass
class TrialResult:
    config: dict[str, Any]
    """The fully resolved trial config."""
    metrics: dict[str, Any]
    """Test-split metrics (DESIGN §5 columns) plus `val_clean_acc`/`val_robust_acc`."""
    epochs: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    attack_config: dict[str, Any] = field(default_factory=dict)
    """Every attack that produced a number here, with its full settings."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: str | Path) -> Path:
        """result.json and the resolved config.yaml, side by side."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.to_dict(), directory / "result.json")
        (directory / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        return directory


@dataclass
class EpochReport:
    epoch: int
    """Completed fine-tuning epochs, 1-based."""
    metrics: dict[str, float]
    """epoch, lr, train_loss, clean_acc, robust_acc (validation subset, epoch attack), wall_s."""
    save_checkpoint: Callable[[str | Path], Path]
    """Write everything needed to continue after this epoch into a directory."""


def _epoch_subset(data: DataSplits, size: int) -> TensorSplit:
    return data.val if len(data.val) <= size else data.val.subset(torch.arange(size))


def _calibration_examples(
    model: nn.Module, data: DataSplits, config: TrialConfig, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Fixed PGD examples from the training split (MRS, Taylor and Hessian all use them)."""
    gen = torch.Generator().manual_seed(config.seed + 7919)
    n = min(config.prune.mrs.num_examples, len(data.train))
    idx = torch.randperm(len(data.train), generator=gen)[:n]
    x = to_float(data.train.x[idx]).to(device)
    y = data.train.y[idx].to(device)
    x_adv = attacks.pgd(
        model,
        x,
        y,
        epsilon=config.epsilon,
        step_size=config.step_size,
        steps=config.threat.train_steps,
        norm=config.threat.norm,
        random_start=True,
        generator=gen,
    )
    return x_adv.detach(), y


def _layer_mrs(
    model: nn.Module, dense: DenseModel, config: TrialConfig, calib: tuple[Tensor, Tensor]
) -> dict[str, float]:
    mrs = config.prune.mrs
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    settings = {
        "estimator": mrs.estimator,
        "epsilon": mrs.epsilon,
        "steps": mrs.steps,
        "num_examples": mrs.num_examples,
        "threat": config.threat.norm,
    }
    name = "mrs-" + "-".join(f"{v}" for v in settings.values())
    return dense.cached(
        name,
        lambda: module_robust_sensitivity(
            model, layers, *calib, estimator=mrs.estimator, epsilon=mrs.epsilon, steps=mrs.steps
        ),
    )


def _dense_metrics(
    model: nn.Module,
    dense: DenseModel,
    config: TrialConfig,
    data: DataSplits,
    test: TensorSplit,
    device: torch.device,
) -> dict[str, float]:
    primary = config.eval.primary
    name = f"eval-{primary}-{config.epsilon:.6g}-{len(test)}"

    def compute() -> dict[str, float]:
        ev = evaluate(
            model,
            test,
            [primary],
            epsilon=config.epsilon,
            step_size=None,
            norm=config.threat.norm,
            batch_size=config.eval.batch_size,
            device=device,
        )
        return {"clean_acc": ev.clean_acc, "robust_acc": ev.accuracy(primary)}

    return dense.cached(name, compute)


def _prepare(
    config: TrialConfig, data: DataSplits, device: torch.device, log: Callable[[str], None]
) -> tuple[nn.Module, dict[str, Any]]:
    """Dense model -> MRS -> ratios -> pruned model, with its bookkeeping."""
    dense = ensure_dense(config, data, device, log=log)
    model = build_model(config, data).to(device)
    model.load_state_dict(dense.state_dict())
    test = _test_split(config, data)
    dense_metrics = _dense_metrics(model, dense, config, data, test, device)
    prune = config.prune
    calib = None
    needs_calib = prune.ratio == "mrs" or prune.criterion in ("taylor", "hessian")
    if needs_calib:
        calib = _calibration_examples(model, data, config, device)
    layer_mrs = _layer_mrs(model, dense, config, calib) if prune.ratio == "mrs" else None
    example = to_float(data.train.x[:2]).to(device)
    if prune.sparsity > 0:
        outcome = prune_model(
            model,
            example=example,
            criterion=prune.criterion,
            sparsity=prune.sparsity,
            rule=prune.ratio,
            temperature=prune.mrs.temperature,
            max_ratio=prune.max_layer_ratio,
            layer_mrs=layer_mrs,
            calib=calib,
            seed=config.seed,
        )
        summary = {
            "params": outcome.params,
            "params_dense": outcome.params_dense,
            "flops": outcome.flops,
            "flops_dense": outcome.flops_dense,
            "achieved_sparsity": outcome.achieved_sparsity,
        }
        layers, warnings = outcome.layers, outcome.warnings
    else:
        flops, params = count_macs_params(model, example)
        summary = {
            "params": params,
            "params_dense": params,
            "flops": flops,
            "flops_dense": flops,
            "achieved_sparsity": 0.0,
        }
        layers, warnings = [], []
    log(
        f"pruned {config.model.arch} with {prune.criterion}/{prune.ratio}: params "
        f"{summary['params_dense']} -> {summary['params']} "
        f"(sparsity {summary['achieved_sparsity']:.3f} of prunable)"
    )
    state = {
        "summary": summary,
        "layers": layers,
        "warnings": warnings,
        "dense": {
            "clean_acc": dense_metrics["clean_acc"],
            "robust_acc": dense_metrics["robust_acc"],
            "key": dense.meta["key"],
        },
    }
    return model, state


def _test_split(config: TrialConfig, data: DataSplits) -> TensorSplit:
    limit = config.eval.test_limit
    return (
        data.test
        if limit is None or limit >= len(data.test)
        else data.test.subset(torch.arange(limit))
    )


def _make_trainer(
    config: TrialConfig, model: nn.Module, data: DataSplits, device: torch.device
) -> Trainer:
    ft = config.finetune
    return Trainer(
        model=model,
        train=data.train,
        method=ft.method,
        epochs=ft.epochs,
        lr=ft.lr,
        schedule=ft.schedule,
        warmup_epochs=ft.warmup_epochs,
        batch_size=ft.batch_size,
        weight_decay=ft.weight_decay,
        momentum=ft.momentum,
        augment=data.augment,
        device=device,
        seed=config.seed + 1,
        adversarial=AdversarialSetting(
            epsilon=config.epsilon,
            step_size=config.step_size,
            steps=config.threat.train_steps,
            norm=config.threat.norm,
            beta=ft.beta or 0.0,
        ),
    )


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"resume: no trial checkpoint at {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if state.get("format") != _CHECKPOINT_FORMAT:
        raise BadInput(f"resume: {file} is not a robprune trial checkpoint")
    return state


def run_trial(
    config: Mapping[str, Any] | TrialConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    save_model: str | Path | None = None,
) -> TrialResult:
    """Run one trial; `resume` is a directory written by `EpochReport.save_checkpoint`.

    `save_model` writes the pruned, fine-tuned weights there (tensors and plain values only:
    load with `torch.load(weights_only=True)` and `load_pruned_state_dict`).
    """
    log = log or (lambda message: None)
    start = time.perf_counter()
    config = parse_trial_config(config)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    data = load_trial_data(config)

    resumed = _load_checkpoint(resume) if resume is not None else None
    if resumed is not None:
        if resumed["config"] != config.to_dict():
            raise BadInput("resume: the checkpoint was written by a different trial config")
        model = build_model(config, data)
        load_pruned_state_dict(model, resumed["model"])
        model.to(device)
        prep = json.loads(resumed["prep"])
        history = list(json.loads(resumed["history"]))
        elapsed_before = float(resumed["wall_s"])
    else:
        model, prep = _prepare(config, data, device, log)
        history, elapsed_before = [], 0.0

    ft = config.finetune
    epochs = ft.epochs if ft.method != "none" else 0
    trainer = _make_trainer(config, model, data, device) if epochs > 0 else None
    if trainer is not None and resumed is not None:
        trainer.load_state_dict(resumed["trainer"])
    val_subset = _epoch_subset(data, config.eval.epoch_subset)
    epoch_attack = attacks.build_attack(
        config.eval.epoch_attack, epsilon=config.epsilon, step_size=None, norm=config.threat.norm
    )

    def checkpoint_writer(snapshot: dict[str, Any]) -> Callable[[str | Path], Path]:
        def save(directory: str | Path) -> Path:
            return atomic_torch_save(snapshot, Path(directory) / CHECKPOINT_FILE)

        return save

    while trainer is not None and trainer.epoch < epochs:
        stats = trainer.run_epoch()
        clean = accuracy_under(
            model, val_subset, None, batch_size=config.eval.batch_size, device=device
        )
        robust = accuracy_under(
            model, val_subset, epoch_attack, batch_size=config.eval.batch_size, device=device
        )
        row = {
            "epoch": stats.epoch,
            "lr": stats.lr,
            "train_loss": stats.train_loss,
            "clean_acc": clean.accuracy,
            "robust_acc": robust.accuracy,
            "wall_s": stats.wall_s,
        }
        history.append(row)
        log(
            f"finetune {ft.method} epoch {stats.epoch}/{epochs} loss {stats.train_loss:.4f} "
            f"val clean {clean.accuracy:.3f} {epoch_attack.name} {robust.accuracy:.3f}"
        )
        if on_epoch is not None:
            snapshot = {
                "format": _CHECKPOINT_FORMAT,
                "config": config.to_dict(),
                "model": pruned_state_dict(model),
                "trainer": trainer.state_dict(),
                "prep": json.dumps(prep),
                "history": json.dumps(history),
                "wall_s": elapsed_before + time.perf_counter() - start,
            }
            on_epoch(
                EpochReport(
                    epoch=stats.epoch,
                    metrics=dict(row),
                    save_checkpoint=checkpoint_writer(snapshot),
                )
            )

    if save_model is not None:
        atomic_torch_save(pruned_state_dict(model), Path(save_model))
    return _finish(
        config,
        model,
        data,
        device,
        prep,
        history,
        trainer.epoch if trainer is not None else 0,
        elapsed_before + time.perf_counter() - start,
        val_subset,
        epoch_attack,
    )


def _finish(
    config: TrialConfig,
    model: nn.Module,
    data: DataSplits,
    device: torch.device,
    prep: dict[str, Any],
    history: list[dict[str, Any]],
    epochs_done: int,
    wall_s: float,
    val_subset: TensorSplit,
    epoch_attack: Any,
) -> TrialResult:
    ev_cfg = config.eval
    names = list(ev_cfg.attacks)
    if ev_cfg.autoattack == "all":
        names += [n for n in ("apgd_ce", "apgd_t") if n not in names]
    test = _test_split(config, data)
    ev = evaluate(
        model,
        test,
        names,
        epsilon=config.epsilon,
        step_size=None,
        norm=config.threat.norm,
        batch_size=ev_cfg.batch_size,
        device=device,
    )
    val_clean = accuracy_under(
        model, val_subset, None, batch_size=ev_cfg.batch_size, device=device
    )
    val_robust = accuracy_under(
        model, val_subset, epoch_attack, batch_size=ev_cfg.batch_size, device=device
    )

    def first(prefix: str) -> float | None:
        for name in names:
            if name.startswith(prefix) and not name.endswith("_l2"):
                return ev.accuracy(name)
        return None

    apgd = [ev.attacks[n].correct for n in names if n.startswith("apgd")]
    metrics: dict[str, Any] = {
        "clean_acc": ev.clean_acc,
        "robust_acc": ev.accuracy(ev_cfg.primary),
        "robust_attack": ev_cfg.primary,
        "fgsm_acc": first("fgsm"),
        "pgd_acc": first("pgd"),
        "cw_acc": first("cw"),
        # worst case over APGD-CE and APGD-T per example; not the official AutoAttack
        "apgd_acc": float(torch.stack(apgd).all(0).float().mean()) if apgd else None,
        "autoattack_acc": None,
        "attacks": {name: out.accuracy for name, out in ev.attacks.items()},
        **prep["summary"],
        "epochs_completed": epochs_done,
        "dense_clean_acc": prep["dense"]["clean_acc"],
        "dense_robust_acc": prep["dense"]["robust_acc"],
        "val_clean_acc": val_clean.accuracy,
        "val_robust_acc": val_robust.accuracy,
        "val_attack": epoch_attack.name,
        "test_size": len(test),
        "wall_s": wall_s,
        "robprune_version": robprune.__version__,
    }
    attack_config = {name: out.config for name, out in ev.attacks.items()}
    attack_config["epoch_attack"] = epoch_attack.config()
    return TrialResult(
        config=config.to_dict(),
        metrics=metrics,
        epochs=history,
        layers=prep["layers"],
        warnings=prep["warnings"] + ev.warnings,
        attack_config=attack_config,
    )
