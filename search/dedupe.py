"""No configuration is trained twice (`search.dedupe`, on by default).

On a small categorical space a sampler suggests the same configuration again (Optuna's TPE
does; so does random sampling). Two mechanisms, preferred in this order:

- **Stop early when the space is exhausted.** When every varied leaf is a choice, the space
  has finitely many configurations; once each was tried the searcher says so and returns
  `FINISHED`, so Tune starts no more trials. (Optuna's samplers cannot be told to avoid a
  configuration, so this is the one repeat the searcher can avoid outright.)
- **Answer a repeat from its original.** A suggested configuration (seed included) equal to
  one already finished or running becomes a trial that trains nothing: it waits for the
  original to end and reports the original's epochs and final result again, so Optuna is told
  the same values and the row in trials.parquet carries `repeat_of` = the original's trial id.
  An original that failed is no answer: the repeat then trains.

The link lives in the trial config (`repeat_of`, for the trainable and the export) and in
the Optuna journal (user attributes, so originals are known again after a restart and across
`--extend` runs).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robprune.io.atomic import content_key

__all__ = [
    "REPEAT_KEY",
    "CONFIG_KEY_ATTR",
    "REPEAT_ATTR",
    "config_key",
    "Originals",
    "TrialFiles",
    "replay_original",
]

#: Key of Tune's trial config naming the original: {"trial_id": ..., "run": ...}.
REPEAT_KEY = "repeat_of"
#: Optuna user attributes: the configuration's key, and the original's Tune trial id.
CONFIG_KEY_ATTR = "config_key"
REPEAT_ATTR = "repeat_of"
#: Seconds between looks at the original's end marker while it still runs.
POLL_S = 1.0
#: Trial config keys that name or place a trial without changing what it computes.
_PLACING = ("name", "cache_dir")


def config_key(trial_config: dict[str, Any]) -> str:
    """Identity of a resolved trial configuration (seed included; name and cache left out)."""
    from robprune.config import parse_trial_config

    resolved = parse_trial_config(trial_config).to_dict()
    for key in _PLACING:
        resolved.pop(key, None)
    return content_key(resolved, length=32)


class Originals:
    """Configuration key -> (Tune trial id, run) of the first trial of that configuration."""

    def __init__(self) -> None:
        self.by_key: dict[str, tuple[str, str]] = {}

    def load(self, study: Any, *, trial_attr: str, run_attr: str) -> None:
        """Originals recorded in the Optuna journal (finished or running, not failed)."""
        import optuna

        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
        )
        for frozen in study.get_trials(deepcopy=False, states=states):
            attrs = frozen.user_attrs
            key, tid = attrs.get(CONFIG_KEY_ATTR), attrs.get(trial_attr)
            if key and tid and REPEAT_ATTR not in attrs:
                self.by_key.setdefault(key, (tid, attrs.get(run_attr, "")))

    def claim(self, key: str, trial_id: str, run: str) -> tuple[str, str] | None:
        """The original of `key` if there is one, else record `trial_id` as it."""
        found = self.by_key.get(key)
        if found is not None and found[0] != trial_id:
            return found
        self.by_key[key] = (trial_id, run)
        return None

    def __len__(self) -> int:
        return len(self.by_key)


def _read(fs: Any, path: str) -> str | None:
    import pyarrow.fs as pafs

    try:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as handle:
            return handle.read().decode()
    except (OSError, UnicodeDecodeError):
        return None


def _last_checkpoint(fs: Any, trial_dir: str) -> str | None:
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True))
    except OSError:
        return None
    names = [i.base_name for i in infos if i.base_name.startswith("checkpoint_")]
    if not names:
        return None
    return f"{trial_dir}/{max(names, key=lambda n: int(n.rpartition('_')[2] or -1))}"


def _wait_for_end(fs: Any, trial_dir: str, marker: str) -> dict[str, Any]:
    while True:
        text = _read(fs, f"{trial_dir}/{marker}")
        if text:
            try:
                return json.loads(text)
            except ValueError:
                pass
        time.sleep(POLL_S)


@dataclass(frozen=True, kw_only=True)
class TrialFiles:
    """What the trainable writes, passed in by it (it owns these names and readers)."""

    end_marker: str
    final_dir: str
    result_file: str
    read_progress: Callable[[Path], dict[str, Any]]
    final_report: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]


def replay_original(config: dict[str, Any], files: TrialFiles) -> bool:
    """Inside a Tune trial: answer a repeat from its original (see the module docstring).

    Returns False when this trial must train itself (not a repeat, or the original failed).
    """
    ref = config.get(REPEAT_KEY)
    if not ref:
        return False
    import pyarrow.fs as pafs
    from ray import tune

    storage = tune.get_context().get_storage()
    fs = storage.storage_filesystem
    runs = storage.experiment_fs_path.rstrip("/").rpartition("/")[0]
    trial_dir = f"{runs}/{ref['run']}/trial_{ref['trial_id']}"
    end = _wait_for_end(fs, trial_dir, files.end_marker)
    checkpoint = _last_checkpoint(fs, trial_dir)
    if end.get("status") != "TERMINATED" or checkpoint is None:
        print(f"repeat of {ref['trial_id']}: the original failed; training it here", flush=True)
        return False
    local = Path(tempfile.mkdtemp(prefix="robprune-repeat-"))
    try:
        pafs.copy_files(
            checkpoint,
            str(local),
            source_filesystem=fs,
            destination_filesystem=pafs.LocalFileSystem(),
        )
        (local / "repeat_of.json").write_text(json.dumps(ref) + "\n")
        _report_again(local, files)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return True


def _report_again(local: Path, files: TrialFiles) -> None:
    """The original's per-epoch reports, then its last (final) report with its checkpoint."""
    from ray import tune

    epochs = files.read_progress(local)["epochs"]
    done = local / files.final_dir / files.result_file
    last_report: dict[str, Any]
    if done.is_file():
        result = json.loads(done.read_text())
        last = result["epochs"][-1] if result["epochs"] else None
        earlier = epochs[:-1] if last is not None else epochs
        last_report = {**files.final_report(result, epochs[-1] if epochs else last), "restores": 0}
    else:  # stopped early by the scheduler: its epochs are all there is
        earlier, last_report = epochs[:-1], {**(epochs[-1] if epochs else {}), "restores": 0}
    for entry in earlier:
        tune.report({**entry, "restores": 0})
    tune.report(last_report, checkpoint=tune.Checkpoint.from_directory(str(local)))
