"""TensorBoard logs of an experiment: per-trial scalars and each trial's hyperparameters.

Written by the export from the same rows as the Parquet tables, one run directory per trial
(`results/tensorboard/TRIAL_ID`), so TensorBoard's HParams tab compares trials by their factors
and final metrics. (Ray Tune also writes its own live event files under tune/RUN/.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robprune.config.factors import FACTOR_COLUMNS

__all__ = ["write_tensorboard", "HPARAM_COLUMNS", "METRIC_TAGS"]

#: The factors (robprune.config.factors) and the seed: what the HParams tab compares trials by.
HPARAM_COLUMNS = (*FACTOR_COLUMNS, "seed")
#: Final metrics shown in the HParams tab, with their tag.
METRIC_TAGS = {
    "clean_acc": "final/clean_acc",
    "robust_acc": "final/robust_acc",
    "fgsm_acc": "final/fgsm_acc",
    "pgd_acc": "final/pgd_acc",
    "achieved_sparsity": "final/achieved_sparsity",
    "achieved_macs_sparsity": "final/achieved_macs_sparsity",
    "params": "final/params",
    "flops": "final/flops",
}
_EPOCH_TAGS = {
    "val_clean_acc": "val/clean_acc",
    "val_robust_acc": "val/robust_acc",
    "train_loss": "train/loss",
    "lr": "train/lr",
}


def write_tensorboard(
    trials: Iterable[dict[str, Any]], epochs: Iterable[dict[str, Any]], out_dir: str | Path
) -> Path:
    """One event-file run per trial: epoch scalars, final metrics and its hparams."""
    from torch.utils.tensorboard import SummaryWriter, summary

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for row in epochs:
        by_trial.setdefault(row["trial_id"], []).append(row)
    trials = list(trials)
    domains = _discrete_domains(trials)
    for trial in trials:
        trial_id = trial["trial_id"]
        writer = SummaryWriter(log_dir=str(out_dir / trial_id))
        try:
            for row in by_trial.get(trial_id, []):
                for key, tag in _EPOCH_TAGS.items():
                    if row.get(key) is not None:
                        writer.add_scalar(tag, float(row[key]), int(row["epoch"]))
            step = int(trial.get("epochs_completed") or 0)
            metrics = {
                tag: float(trial[key])
                for key, tag in METRIC_TAGS.items()
                if trial.get(key) is not None
            }
            hp = {k: trial[k] for k in HPARAM_COLUMNS if trial.get(k) is not None}
            hp["status"] = trial["status"]
            # a factor that does not apply to this trial (null) has no value to put in a domain
            present = {k: v for k, v in domains.items() if k in hp}
            exp, ssi, sei = summary.hparams(hp, metrics, hparam_domain_discrete=present)
            for hparams_summary in (exp, ssi, sei):
                writer.file_writer.add_summary(hparams_summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, step)
        finally:
            writer.close()
    return out_dir


def _discrete_domains(trials: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Categorical columns' values across trials, so TensorBoard can filter by them."""
    domains: dict[str, list[Any]] = {}
    for key in (*HPARAM_COLUMNS, "status"):
        values = {t[key] for t in trials if isinstance(t.get(key), str)}
        if values and all(isinstance(t.get(key), str | type(None)) for t in trials):
            domains[key] = sorted(values)
    return domains
