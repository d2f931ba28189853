"""Before fine-tuning: the dense model, its reference accuracies, MRS, and the pruned model.

Everything here depends only on the dense model and the prune section, so what is costly
(dense accuracies, MRS scores) is cached beside the dense model and shared between trials,
under names derived from everything each value depends on (`robprune.io.cache_keys`).
After pruning, BatchNorm statistics are re-estimated on clean training batches
(`prune.bn_recalibration`; AdaBN), and so is each pruned copy `prune_damage` scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from robprune.config import TrialConfig
from robprune.data import DataSplits, TensorSplit, iterate_batches, to_float
from robprune.evaluation.accuracy import evaluate
from robprune.io.cache_keys import CALIBRATION_STREAM, dense_eval_inputs, mrs_inputs
from robprune.pruning import (
    RATIO_RULES,
    AllocationParams,
    DamageSetting,
    count_macs_params,
    module_robust_sensitivity,
    prune_model,
    recalibrate_bn,
    zero_mrs_warnings,
)
from robprune.runtime import Runtime
from robprune.training.losses import pgd_examples
from robprune.trial.builders import build_model, training_threat
from robprune.trial.dense import DenseModel, ensure_dense
from robprune.trial.records import DenseReference, PreparedTrial
from robprune.trial.subsets import limited_test_split

__all__ = ["prepare", "bn_recalibrator"]

#: Offset of the seed that draws the recalibration batches from the trial seed.
_BN_STREAM = 104729


def bn_recalibrator(
    config: TrialConfig, data: DataSplits, device: torch.device
) -> Callable[[nn.Module], int] | None:
    """Re-estimates a model's BatchNorm statistics on `prune.bn_recalibration` clean training
    batches (the fine-tuning batch size, a fixed draw per seed); None when it is 0."""
    batches = config.prune.bn_recalibration
    if batches == 0:
        return None

    def recalibrate(model: nn.Module) -> int:
        gen = torch.Generator().manual_seed(config.seed + _BN_STREAM)
        inputs = (
            x
            for x, _ in iterate_batches(
                data.train,
                batch_size=config.finetune.batch_size,
                shuffle=True,
                augment=False,
                generator=gen,
                device=device,
            )
        )
        return recalibrate_bn(model, inputs, num_batches=batches)

    return recalibrate


#: Makes the calibration examples against a given model.
CalibrationAttack = Callable[[nn.Module], Tensor]


def _calibration_examples(
    model: nn.Module,
    data: DataSplits,
    config: TrialConfig,
    device: torch.device,
    runtime: Runtime,
) -> tuple[Tensor, Tensor, CalibrationAttack]:
    """Fixed PGD examples from the training split (MRS, Taylor and Hessian all use them), and
    the attack that made them, which makes the same inputs' examples against another model
    (`prune.mrs.reattack`) from the same random start, so those differ by the model alone."""
    gen = torch.Generator().manual_seed(config.seed + CALIBRATION_STREAM)
    n = min(config.prune.mrs.num_examples, len(data.train))
    idx = torch.randperm(len(data.train), generator=gen)[:n]
    x = runtime.format(to_float(data.train.x[idx]).to(device))
    y = data.train.y[idx].to(device)
    start = gen.get_state()
    threat = training_threat(config, beta=0.0)

    def attack(target: nn.Module) -> Tensor:
        with runtime.autocast():
            return pgd_examples(target, x, y, threat, torch.Generator().set_state(start)).detach()

    return attack(model), y, attack


def _estimators(config: TrialConfig) -> list[str]:
    """The MRS estimators this trial computes: the rule's own first, then `record_mrs`."""
    prune = config.prune
    if prune.sparsity == 0:
        return []
    names = [prune.mrs.estimator] if RATIO_RULES[prune.ratio].uses_mrs else []
    return names + [n for n in prune.record_mrs if n not in names]


def _layer_scores(
    model: nn.Module,
    dense: DenseModel,
    config: TrialConfig,
    calib: tuple[Tensor, Tensor],
    runtime: Runtime,
    *,
    estimator: str,
    example: Tensor,
    recalibrate: Callable[[nn.Module], int] | None,
    attack: CalibrationAttack | None = None,
) -> dict[str, float]:
    """One estimator's per-layer values, cached beside the dense model under a name derived
    from its inputs (`mrs_inputs`). `prune_damage` prunes copies of the model with
    Torch-Pruning, so it runs without autocast (its re-attacks, `attack`, use the runtime's
    autocast as the calibration attack does)."""
    inputs = mrs_inputs(config, estimator)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    damage = None
    if estimator == "prune_damage":
        damage = DamageSetting(
            criterion=inputs.criterion,
            example=example,
            sparsity=inputs.sparsity,
            max_ratio=inputs.max_layer_ratio,
            budget=inputs.budget,
            seed=inputs.seed,
            recalibrate=recalibrate if inputs.bn_recalibration else None,
            attack=attack if inputs.reattack else None,
        )

    def compute() -> dict[str, float]:
        kwargs = dict(
            estimator=estimator, epsilon=inputs.weight_epsilon, steps=inputs.steps, damage=damage
        )
        if damage is not None:
            return module_robust_sensitivity(model, layers, *calib, **kwargs)
        with runtime.autocast():
            return module_robust_sensitivity(model, layers, *calib, **kwargs)

    return dense.cached(inputs.name(), compute)


def _dense_metrics(
    model: nn.Module,
    dense: DenseModel,
    config: TrialConfig,
    test: TensorSplit,
    device: torch.device,
    runtime: Runtime,
) -> dict[str, float]:
    inputs = dense_eval_inputs(config, len(test))

    def compute() -> dict[str, float]:
        ev = evaluate(
            model,
            test,
            [inputs.primary],
            threat=config.resolved_threat,
            batch_size=config.eval.batch_size,
            device=device,
            runtime=runtime,
        )
        return {"clean_acc": ev.clean_acc, "robust_acc": ev.accuracy(inputs.primary)}

    return dense.cached(inputs.name(), compute)


def _prune(
    model: nn.Module,
    config: TrialConfig,
    *,
    example: Tensor,
    layer_scores: dict[str, dict[str, float]],
    calib: tuple[Tensor, Tensor] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Prune in place; (size summary, layers table, warnings)."""
    prune = config.prune
    if prune.sparsity == 0:
        flops, params = count_macs_params(model, example)
        summary = {
            "params": params,
            "params_dense": params,
            "flops": flops,
            "flops_dense": flops,
            "achieved_sparsity": 0.0,
            "achieved_macs_sparsity": 0.0,
        }
        return summary, [], []
    outcome = prune_model(
        model,
        example=example,
        criterion=prune.criterion,
        sparsity=prune.sparsity,
        rule=prune.ratio,
        allocation=AllocationParams(
            temperature=prune.mrs.temperature,
            band=prune.mrs.band,
            band_scale=prune.mrs.band_scale,
        ),
        max_ratio=prune.max_layer_ratio,
        layer_mrs=layer_scores.get(prune.mrs.estimator)
        if RATIO_RULES[prune.ratio].uses_mrs
        else None,
        layer_scores=layer_scores,
        calib=calib,
        seed=config.seed,
        budget=prune.budget,
    )
    summary = {
        "params": outcome.params,
        "params_dense": outcome.params_dense,
        "flops": outcome.flops,
        "flops_dense": outcome.flops_dense,
        "achieved_sparsity": outcome.achieved_sparsity,
        "achieved_macs_sparsity": outcome.achieved_macs_sparsity,
    }
    layers = [{**row, "bn_recalibration": prune.bn_recalibration} for row in outcome.layers]
    return summary, layers, outcome.warnings


def _split_warnings(config: TrialConfig) -> list[str]:
    """A brought checkpoint has likely been trained on the whole training split."""
    if config.dense.checkpoint is None or config.data.val_source != "train":
        return []
    return [
        "dense.checkpoint with data.val_source: train: a checkpoint trained on the full "
        "training set (RobustBench, AutoAttack's test model) has seen the validation examples, "
        "so the search objective is measured on training data; set data.val_source: test"
    ]


def _all_layer_scores(
    model: nn.Module,
    dense: DenseModel,
    config: TrialConfig,
    calib: tuple[Tensor, Tensor] | None,
    runtime: Runtime,
    example: Tensor,
    recalibrate: Callable[[nn.Module], int] | None,
    attack: CalibrationAttack | None,
) -> tuple[dict[str, dict[str, float]], tuple[Tensor, Tensor] | None]:
    """Every estimator's per-layer values; leaves the model (and the calibration examples) in
    the contiguous format Torch-Pruning needs."""
    estimators = _estimators(config)
    scores: dict[str, dict[str, float]] = {}
    for name in (n for n in estimators if n != "prune_damage"):  # in the runtime's format
        scores[name] = _layer_scores(
            model, dense, config, calib, runtime, estimator=name, example=example, recalibrate=None
        )
    model.to(memory_format=torch.contiguous_format)
    if calib is not None:
        calib = (calib[0].contiguous(), calib[1])
    if "prune_damage" in estimators:  # Torch-Pruning on copies: contiguous, as the prune is
        scores["prune_damage"] = _layer_scores(
            model,
            dense,
            config,
            calib,
            runtime,
            estimator="prune_damage",
            example=example,
            recalibrate=recalibrate,
            attack=attack,
        )
    return scores, calib


def _zero_mrs(layer_scores: dict[str, dict[str, float]]) -> list[str]:
    """A zero weight-ball MRS means no gradient reached the layer; a zero damage is a
    measurement, so `prune_damage` is left out."""
    return [
        w
        for name, scores in layer_scores.items()
        if name != "prune_damage"
        for w in zero_mrs_warnings(scores)
    ]


def prepare(
    config: TrialConfig,
    data: DataSplits,
    device: torch.device,
    log: Callable[[str], None],
    *,
    runtime: Runtime | None = None,
) -> tuple[nn.Module, PreparedTrial]:
    """Dense model -> MRS -> ratios -> pruned model, with its JSON-able record.

    `runtime` (default: plain fp32) applies to the dense evaluation, the calibration PGD and
    MRS; the model is back in the contiguous format before Torch-Pruning sees it.
    """
    runtime = runtime if runtime is not None else Runtime(device=device)
    dense = ensure_dense(config, data, device, log=log)
    model = runtime.prepare(build_model(config.model, data))
    model.load_state_dict(dense.state_dict())
    test = limited_test_split(config.eval, data)
    dense_metrics = _dense_metrics(model, dense, config, test, device, runtime)
    prune = config.prune
    calib, attack = None, None
    if _estimators(config) or prune.criterion in ("taylor", "hessian"):
        x_adv, y, attack = _calibration_examples(model, data, config, device, runtime)
        calib = (x_adv, y)
    example = to_float(data.train.x[:2]).to(device)
    recalibrate = bn_recalibrator(config, data, device)
    layer_scores, calib = _all_layer_scores(
        model, dense, config, calib, runtime, example, recalibrate, attack
    )
    summary, layers, warnings = _prune(
        model, config, example=example, layer_scores=layer_scores, calib=calib
    )
    if recalibrate is not None and prune.sparsity > 0:
        recalibrate(model)  # before anything measures the pruned model
    warnings = _split_warnings(config) + warnings
    log(
        f"pruned {config.model.arch} with {prune.criterion}/{prune.ratio}: params "
        f"{summary['params_dense']} -> {summary['params']} "
        f"(sparsity {summary['achieved_sparsity']:.3f} of prunable params, "
        f"{summary['achieved_macs_sparsity']:.3f} of prunable MACs)"
    )
    return model, PreparedTrial(
        summary=summary,
        layers=layers,
        warnings=_zero_mrs(layer_scores) + warnings,
        dense=DenseReference(
            clean_acc=dense_metrics["clean_acc"],
            robust_acc=dense_metrics["robust_acc"],
            key=dense.meta["key"],
            checkpoint_sha256=dense.meta.get("checkpoint_sha256"),  # a brought model
        ),
    )
