"""Re-evaluate one finished trial from its saved pruned model: the finalists stage's unit.

The search's trials select on validation; the finalists (the best few) are then measured once
more on the full test split with the full attack suite, the official AutoAttack and the deep
gradient-masking checks. This module does one of them, given the trial's resolved config and
its checkpoint directory; it knows nothing about Ray (search/finalists.py schedules it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from robprune.config import TrialConfig, parse_trial_config
from robprune.data import to_float
from robprune.errors import BadInput
from robprune.evaluation.curves import CURVE_FACTORS, security_curve
from robprune.evaluation.final import (
    CHECK_EXAMPLES,
    SWEEP,
    FinalSuite,
    final_evaluation,
    full_suite,
)
from robprune.io.cache_keys import dense_curve_inputs
from robprune.models.serialization import load_pruned_state_dict
from robprune.runtime import resolve_device, seed_everything
from robprune.trial import CHECKPOINT_FILE
from robprune.trial.builders import build_model, load_trial_data
from robprune.trial.dense import ensure_dense

__all__ = ["MODEL_FILE", "finalist_settings", "evaluate_finalist", "find_saved_model"]

#: The pruned model inside a trial's final checkpoint (`run_trial(save_model=...)`).
MODEL_FILE = "model.pt"


def finalist_settings(config: TrialConfig, attacks: list[str] | None) -> dict[str, Any]:
    """What a finalist evaluation depends on: a stored result with other settings is redone."""
    version = config.eval.autoattack if config.eval.autoattack == "rand" else "standard"
    names = list(attacks) if attacks else full_suite(config.eval.attacks, config.threat.eval_steps)
    pgd_column = f"pgd{config.threat.eval_steps}"  # the `pgd_acc` column's attack, always run
    return {
        "attacks": names if pgd_column in names else [*names, pgd_column],
        "autoattack": version,
        "autoattack_n": config.eval.autoattack_n,
        "check_examples": CHECK_EXAMPLES,
        "sweep": list(SWEEP),
        "test": "full",
    }  # fmt: skip


def find_saved_model(directory: str | Path) -> dict[str, Any]:
    """The pruned model's state from a trial checkpoint (`final/model.pt`, else the epoch
    checkpoint's `trial_state.pt`)."""
    directory = Path(directory)
    for candidate in (directory / "final" / MODEL_FILE, directory / MODEL_FILE):
        if candidate.is_file():
            return torch.load(candidate, map_location="cpu", weights_only=True)
    state_file = directory / CHECKPOINT_FILE
    if state_file.is_file():
        return torch.load(state_file, map_location="cpu", weights_only=True)["model"]
    raise BadInput(f"{directory}: the trial checkpoint holds no saved pruned model")


def dense_curve(
    cfg: TrialConfig, data: Any, device: Any, examples: int | None, log: Any
) -> list[dict[str, Any]] | None:
    """The security curve of the dense model a finalist was pruned from, on the same first
    test images, cached beside the dense model (once per dense model)."""
    if not examples:
        return None
    dense = ensure_dense(cfg, data, device, log=log)
    inputs = dense_curve_inputs(cfg, examples, CURVE_FACTORS)

    def compute() -> list[dict[str, Any]]:
        model = build_model(cfg.model, data)
        model.load_state_dict(dense.state_dict())
        model.to(device).eval()
        x, y = to_float(data.test.x[:examples]), data.test.y[:examples]
        return security_curve(
            model,
            x,
            y,
            epsilon=cfg.epsilon,
            norm=cfg.threat.norm,
            steps=cfg.threat.eval_steps,
            batch_size=cfg.eval.batch_size,
            device=device,
            seed=cfg.seed,
        )

    return dense.cached(inputs.name(), compute)


def evaluate_finalist(
    config: dict[str, Any] | TrialConfig,
    checkpoint_dir: str | Path,
    *,
    attacks: list[str] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """The finalist's record: settings, metrics (full test split), attack configs, flags."""
    log = log or (lambda message: None)
    start = time.perf_counter()
    cfg = parse_trial_config(config)
    settings = finalist_settings(cfg, attacks)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_trial_data(cfg.data, seed=cfg.seed)
    model = build_model(cfg.model, data)
    load_pruned_state_dict(model, find_saved_model(checkpoint_dir))
    model.to(device).eval()
    primary = cfg.eval.primary if cfg.eval.primary in settings["attacks"] else None
    pgd = [n for n in settings["attacks"] if n.startswith("pgd")]
    primary = primary or (pgd or settings["attacks"])[0]
    suite = FinalSuite(
        attacks=tuple(settings["attacks"]),
        primary=primary,
        threat=cfg.resolved_threat,
        batch_size=cfg.eval.batch_size,
        pgd_column=f"pgd{cfg.threat.eval_steps}",
        autoattack=settings["autoattack"],
        autoattack_n=settings["autoattack_n"],
        seed=cfg.seed,
        deep_checks=True,
    )
    result = final_evaluation(model, data.test, suite, device=device, log=log)
    curve = dense_curve(cfg, data, device, result.metrics.get("check_examples"), log)
    return {
        "settings": settings,
        "metrics": {
            **result.metrics,
            "dense_eps_sweep": curve,
            "wall_s": time.perf_counter() - start,
        },
        "attack_config": result.attack_config,
        "warnings": result.warnings,
    }
