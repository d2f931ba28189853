"""The benchmark-only stand-in for a trial's compute (`benchmarks/bench_scale.py`).

`install()` is Ray's `worker_process_setup_hook`, named only by `bench_scale.py`: in each Ray
worker it replaces one name, `search.run.trainable.run_trial` (the function the trainable
calls), with `standin_run_trial`. Everything around it runs as in a real search: the trainable's
bookkeeping (per-epoch reports with checkpoints, progress files, the final checkpoint with
`final/result.json`, restores), the searcher and dedupe, the callbacks, end markers, durability
pushes, the export and the report. The stand-in sleeps `ROBPRUNE_BENCH_EPOCH_S` a fine-tuning
epoch (the "ideal" compute the benchmark subtracts) and returns a result shaped like a real
one: a real trial's `result.json` (`ROBPRUNE_BENCH_TEMPLATE`, written by the benchmark) with
this trial's config and metrics moved by a deterministic function of the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

TEMPLATE_ENV = "ROBPRUNE_BENCH_TEMPLATE"
EPOCH_S_ENV = "ROBPRUNE_BENCH_EPOCH_S"
#: Bytes of a stand-in checkpoint: about a pruned digits CNN's weights and optimizer state.
CHECKPOINT_BYTES = 64 * 1024


def _rng(config: dict[str, Any]) -> random.Random:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _save(epoch: int) -> Any:
    """A checkpoint a restarted trial takes as whole (`search/run/resume_point.py` loads its
    `trial_state.pt`): a real trial checkpoint's format around a zero payload, and the epoch."""

    def save_checkpoint(directory: str | Path) -> Path:
        import torch

        from robprune.trial.checkpoint import _FORMAT, CHECKPOINT_FILE

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        dense = {"clean_acc": 0.0, "robust_acc": 0.0, "key": "standin"}
        prep = {"summary": {}, "layers": [], "warnings": [], "dense": dense}
        state = {
            "format": _FORMAT,
            "config": {},
            "model": {"standin": torch.zeros(CHECKPOINT_BYTES // 4)},
            "trainer": {},
            "prep": json.dumps(prep),
            "history": "[]",
            "wall_s": 0.0,
        }
        torch.save(state, directory / CHECKPOINT_FILE)
        (directory / "standin.json").write_text(json.dumps({"epoch": epoch}))
        return directory

    return save_checkpoint


def standin_run_trial(
    config: Any,
    *,
    on_epoch: Any = None,
    resume: str | Path | None = None,
    log: Any = None,
    save_model: str | Path | None = None,
) -> Any:
    """`robprune.trial.run_trial`'s signature and result, with `time.sleep` as its compute."""
    from robprune.config import parse_trial_config
    from robprune.trial import EpochReport, TrialResult

    parsed = parse_trial_config(config)
    resolved = parsed.to_dict()
    template = json.loads(Path(os.environ[TEMPLATE_ENV]).read_text())
    epoch_s = float(os.environ.get(EPOCH_S_ENV, "0.05"))
    rng = _rng(resolved)
    total = parsed.finetune.epochs if parsed.finetune.method != "none" else 0
    start = 0
    if resume is not None:
        start = json.loads(Path(resume, "standin.json").read_text())["epoch"]
    history = []
    for epoch in range(start + 1, total + 1):
        time.sleep(epoch_s)
        metrics = {
            "epoch": float(epoch),
            "lr": 0.01,
            "train_loss": 1.0 / epoch,
            "clean_acc": min(1.0, 0.5 + 0.1 * epoch + 0.05 * rng.random()),
            "robust_acc": min(1.0, 0.3 + 0.05 * epoch + 0.05 * rng.random()),
            "wall_s": epoch_s,
        }
        history.append({"epoch": epoch, **metrics})
        if on_epoch is not None:
            on_epoch(EpochReport(epoch=epoch, metrics=metrics, save_checkpoint=_save(epoch)))
    metrics = {
        k: (
            min(1.0, max(0.0, v + rng.uniform(-0.05, 0.05)))
            if k.endswith("_acc") and isinstance(v, float)
            else v
        )
        for k, v in template["metrics"].items()
    }
    if save_model is not None:
        Path(save_model).parent.mkdir(parents=True, exist_ok=True)
        Path(save_model).write_bytes(bytes(CHECKPOINT_BYTES))
    return TrialResult(
        config=resolved,
        metrics=metrics,
        epochs=history,
        layers=template["layers"],
        warnings=[],
        attack_config=template["attack_config"],
    )


def install() -> None:
    """Ray worker setup hook: the trainable's compute becomes the stand-in (see above)."""
    import search.run.trainable as trainable
    from robprune.trial import run_trial

    if trainable.run_trial is not run_trial:  # the name the trainable calls must be the real one
        raise RuntimeError("search.run.trainable.run_trial is not robprune.trial.run_trial")
    trainable.run_trial = standin_run_trial
