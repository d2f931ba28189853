"""Which checkpoints a trial keeps: its newest `KEEP` epoch checkpoints and its final one.

Tune could delete older checkpoints itself (`CheckpointConfig.num_to_keep`), but then it also
forces a whole experiment snapshot (every trial's state) to storage each time a trial has made
`num_to_keep` checkpoints since the last one: about once per trial, each snapshot as large as
the experiment, so the bytes a search writes would grow with the square of its trials. Tune
keeps every checkpoint instead (no forced snapshots), the trainable deletes its own older ones
on storage once a newer one is there (`prune_older`), and the driver forgets them too
(`ForgetOlder`), so that the snapshot and the driver's memory hold a few per trial, not one per
epoch. A restarted trial continues from the newest whole checkpoint in its folder
(`search/run/resume_point.py`), never from one the snapshot names, so deleting older ones under
a running trial loses nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray import tune

from search.state import storage
from search.state.checkpoints import CHECKPOINT_DIR
from search.state.trial_files import FINAL_DIR, RESULT_FILE

__all__ = ["KEEP", "prune_older", "prune_own", "ForgetOlder"]

#: Epoch checkpoints a trial keeps on storage (the final one is kept besides).
KEEP = 2


def prune_older(fs: Any, trial_dir: str, keep: int = KEEP) -> list[str]:
    """Delete the checkpoints in `trial_dir` older than its newest `keep`, except a final one.

    Returns the deleted paths. A deletion that fails is left for later (it costs room only).
    """
    found = []
    for info in storage.listing(fs, trial_dir):
        match = CHECKPOINT_DIR.match(info.base_name)
        if match:
            found.append((int(match.group(1)), info.path))
    deleted = []
    for _, path in sorted(found)[: max(0, len(found) - keep)]:
        if storage.is_file(fs, f"{path}/{FINAL_DIR}/{RESULT_FILE}"):
            continue  # the trial's result: what the export and the finalists read
        try:
            fs.delete_dir(path)
        except OSError:
            continue
        deleted.append(path)
    return deleted


def prune_own() -> None:
    """In a trial, after `tune.report` has stored a new checkpoint: prune the trial's folder."""
    try:
        context = tune.get_context().get_storage()
    except Exception:  # noqa: BLE001 - outside a Tune session (unit use): nothing to prune
        return
    prune_older(context.storage_filesystem, context.trial_fs_path)


class ForgetOlder(tune.Callback):
    """The driver's view of each trial's checkpoints, cut to the newest few as they arrive."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # a trial restored from a snapshot older than this scheme still carries a checkpoint
        # setting that makes Tune delete checkpoints, which the trainable already deletes
        manager = trial.run_metadata.checkpoint_manager
        if manager._checkpoint_config.num_to_keep is not None:
            manager._checkpoint_config = dataclasses.replace(
                manager._checkpoint_config, num_to_keep=None
            )

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune's private members (checked by search.run.tune_internals.check_tune_internals)
        metadata = trial.run_metadata
        manager = metadata.checkpoint_manager
        if len(manager._checkpoint_results) > self.keep:
            manager._checkpoint_results = manager._checkpoint_results[-self.keep :]
            metadata.invalidate_cache()
