"""Answering a repeated configuration from its original, inside its Tune trial.

The searcher marked the trial `repeat_of` its original (`search.state.repeats`): it trains
nothing, waits until the original ends (its end marker), and reports the original's epochs and
final result again with a copy of its last checkpoint, so Optuna is told the same values and
the export reads the same result. An original that failed is no answer: the trial then trains.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from search.state import storage
from search.state.repeats import REPEAT_KEY, REPLAY_FILE
from search.state.trial_files import FINAL_DIR, RESULT_FILE, final_report, read_progress

__all__ = ["replay_original", "POLL_S"]

#: Seconds between looks at the original's end marker while it still runs.
POLL_S = 1.0


def _last_checkpoint(fs: Any, trial_dir: str) -> str | None:
    names = [
        i.base_name
        for i in storage.listing(fs, trial_dir)
        if i.base_name.startswith("checkpoint_")
    ]
    if not names:
        return None
    return f"{trial_dir}/{max(names, key=lambda n: int(n.rpartition('_')[2] or -1))}"


def _wait_for_end(fs: Any, trial_dir: str, marker: str) -> dict[str, Any]:
    while True:
        text = storage.read_text_or_none(fs, f"{trial_dir}/{marker}")
        if text:
            try:
                return json.loads(text)
            except ValueError:
                pass
        time.sleep(POLL_S)


def replay_original(config: dict[str, Any]) -> bool:
    """Inside a Tune trial: answer a repeat from its original (see the module docstring).

    Returns False when this trial must train itself (not a repeat, or the original failed).
    """
    ref = config.get(REPEAT_KEY)
    if not ref:
        return False
    from ray import tune

    from search.run.reconcile import END_MARKER

    context = tune.get_context().get_storage()
    fs = context.storage_filesystem
    runs = context.experiment_fs_path.rstrip("/").rpartition("/")[0]
    trial_dir = f"{runs}/{ref['run']}/trial_{ref['trial_id']}"
    end = _wait_for_end(fs, trial_dir, END_MARKER)
    checkpoint = _last_checkpoint(fs, trial_dir)
    if end.get("status") != "TERMINATED" or checkpoint is None:
        print(f"repeat of {ref['trial_id']}: the original failed; training it here", flush=True)
        return False
    local = Path(tempfile.mkdtemp(prefix="robprune-repeat-"))
    try:
        storage.copy_tree(checkpoint, str(local), source_fs=fs)
        (local / REPLAY_FILE).write_text(json.dumps(ref) + "\n")
        _report_again(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return True


def _report_again(local: Path) -> None:
    """The original's per-epoch reports, then its last (final) report with its checkpoint."""
    from ray import tune

    epochs = read_progress(local)["epochs"]
    done = local / FINAL_DIR / RESULT_FILE
    last_report: dict[str, Any]
    if done.is_file():
        result = json.loads(done.read_text())
        last = result["epochs"][-1] if result["epochs"] else None
        earlier = epochs[:-1] if last is not None else epochs
        last_report = {**final_report(result, epochs[-1] if epochs else last), "restores": 0}
    else:  # stopped early by the scheduler: its epochs are all there is
        earlier, last_report = epochs[:-1], {**(epochs[-1] if epochs else {}), "restores": 0}
    for entry in earlier:
        tune.report({**entry, "restores": 0})
    tune.report(last_report, checkpoint=tune.Checkpoint.from_directory(str(local)))
