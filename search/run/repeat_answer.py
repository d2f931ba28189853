"""Answering a repeated configuration from its original, inside its Tune trial.

The searcher marked the trial `repeat_of` its original (`search.state.repeats`): it trains
nothing and reports the original's epochs and final result again with a copy of its last
checkpoint, so Optuna is told the same values and the export reads the same result.

A worker sees only the storage, so the answer comes from the original's records there:
its end marker (written by the driver when it ended, or by the reconciliation before a resume
for a trial another record finished), its `final/` checkpoint, or a verdict the driver wrote
into this trial's own directory (`VERDICT_FILE`: the original is in no record of this run).
An original of an earlier run has ended by definition (runs go one after another), so nothing
is waited for there. Every wait has a bound: when the original's directory shows no sign of
life for `ROBPRUNE_REPEAT_STALL_S` seconds (default one hour) the repeat trains itself. An
original that failed, or left no checkpoint to answer from, is no answer: the repeat trains.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from search.run.end_marker import read_marker
from search.state import storage
from search.state.checkpoints import MANIFEST, is_whole
from search.state.repeats import REPEAT_KEY, REPLAY_FILE
from search.state.trial_files import (
    FINAL_DIR,
    PROGRESS_FILE,
    RESULT_FILE,
    final_report,
    read_progress,
)

__all__ = ["replay_original", "await_original", "orphan_repeats", "Answer", "POLL_S"]
__all__ += ["VERDICT_FILE", "stall_s"]

#: Seconds between looks at the original's records while it still runs.
POLL_S = 1.0
#: In a repeat's own directory: the driver's word that the original is in no record of the
#: run, {"why": ...}; the repeat trains itself.
VERDICT_FILE = "robprune-original-gone.json"
_ERROR_FILES = ("error.txt", "robprune-trial-error.txt")


def stall_s() -> float:
    """How long an original may show no sign of life before its repeat trains itself."""
    return float(os.environ.get("ROBPRUNE_REPEAT_STALL_S", "3600"))


@dataclass(frozen=True)
class Answer:
    """What a repeat does: replay `checkpoint` (a path on storage), or train (None)."""

    checkpoint: str | None
    why: str


def _checkpoints(fs: Any, trial_dir: str) -> list[str]:
    infos = storage.listing(fs, trial_dir)
    names = [i.base_name for i in infos if i.base_name.startswith("checkpoint_")]
    return sorted(names, key=lambda n: int(n.rpartition("_")[2] or -1))


def _whole(fs: Any, path: str) -> bool:
    """Stored in full: a checkpoint still being uploaded (a re-report of a finished trial is
    copied into a new checkpoint while its end marker already exists) is not an answer."""
    if storage.is_file(fs, f"{path}/{MANIFEST}"):
        return is_whole(fs, path)
    return storage.is_file(fs, f"{path}/{PROGRESS_FILE}")  # an older robprune's checkpoint


def _final_checkpoint(fs: Any, trial_dir: str) -> str | None:
    for name in reversed(_checkpoints(fs, trial_dir)):
        path = f"{trial_dir}/{name}"
        if storage.read_text_or_none(fs, f"{path}/{FINAL_DIR}/{RESULT_FILE}") and _whole(fs, path):
            return path
    return None


def _replay_last(fs: Any, trial_dir: str, why: str) -> Answer:
    """The original's final checkpoint, else its newest whole one (stopped early by ASHA)."""
    final = _final_checkpoint(fs, trial_dir)
    if final is not None:
        return Answer(final, why)
    for name in reversed(_checkpoints(fs, trial_dir)):
        if _whole(fs, f"{trial_dir}/{name}"):
            return Answer(f"{trial_dir}/{name}", why)
    return Answer(None, f"{why}, but left no whole checkpoint to answer from")


def _recorded(fs: Any, original: str, own: str) -> Answer | None:
    """The answer the records hold now, or None while the original may still end."""
    marker = read_marker(fs, original)
    if marker is not None:
        if marker["status"] != "TERMINATED":
            return Answer(None, "the original failed")
        return _replay_last(fs, original, "the original ended (its end marker)")
    gone = storage.read_text_or_none(fs, f"{own}/{VERDICT_FILE}")
    if gone is not None:
        final = _final_checkpoint(fs, original)
        if final is not None:
            return Answer(final, "the original finished (its final checkpoint)")
        return Answer(None, "the original is in no record of this run")
    return None


def _ended_earlier(fs: Any, original: str) -> Answer:
    """An original of an earlier run: that run is over, so the original ended somehow."""
    names = {i.base_name for i in storage.listing(fs, original)}
    if names & set(_ERROR_FILES):
        return Answer(None, "the original failed")
    final = _final_checkpoint(fs, original)
    if final is not None:
        return Answer(final, "the original finished (its final checkpoint)")
    return _replay_last(fs, original, "the original's run ended")


def _sign_of_life(fs: Any, trial_dir: str) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((i.base_name, i.size or 0) for i in storage.listing(fs, trial_dir)))


def await_original(
    fs: Any,
    original: str,
    own: str,
    *,
    same_run: bool,
    stall: float | None = None,
    poll: float = POLL_S,
    say: Any = print,
) -> Answer:
    """Wait (bounded) until the records answer for the original (see the module docstring)."""
    answer = _recorded(fs, original, own)
    if answer is not None:
        return answer
    if not same_run:
        return _ended_earlier(fs, original)
    limit = stall_s() if stall is None else stall
    say(f"waiting for its end marker ({original}; at most {limit:.0f} s without change)")
    last, since = _sign_of_life(fs, original), time.monotonic()
    while True:
        time.sleep(poll)
        answer = _recorded(fs, original, own)
        if answer is not None:
            return answer
        now, sign = time.monotonic(), _sign_of_life(fs, original)
        if sign != last:
            last, since = sign, now
        elif now - since >= limit:
            final = _final_checkpoint(fs, original)
            if final is not None:
                return Answer(final, "the original finished (its final checkpoint)")
            return Answer(None, f"no sign of the original for {limit:.0f} s")


def orphan_repeats(
    fs: Any, run_path: str, run: str, unfinished: list[Any], known: set[str]
) -> list[str]:
    """Driver side, before a resume: tell each unfinished repeat of this run whose original
    is not in the run's record (dropped, never saved by Tune) to train itself."""
    orphans = []
    for trial in unfinished:
        ref = (trial.config or {}).get(REPEAT_KEY)
        if not ref or ref.get("run") != run or ref.get("trial_id") in known:
            continue
        why = json.dumps({"why": f"{ref['trial_id']} is not in the record of {run}"})
        storage.write_text(fs, f"{run_path}/{trial.storage.trial_dir_name}/{VERDICT_FILE}", why)
        orphans.append(trial.trial_id)
    return orphans


def replay_original(config: dict[str, Any]) -> bool:
    """Inside a Tune trial: answer a repeat from its original (see the module docstring).

    Returns False when this trial must train itself (not a repeat, or no answer).
    """
    ref = config.get(REPEAT_KEY)
    if not ref:
        return False

    context = tune.get_context().get_storage()
    fs = context.storage_filesystem
    own_run = context.experiment_fs_path.rstrip("/")
    runs = own_run.rpartition("/")[0]
    original = f"{runs}/{ref['run']}/trial_{ref['trial_id']}"
    same_run = own_run.rpartition("/")[2] == ref["run"]
    own = context.trial_fs_path.rstrip("/")

    def say(line: str) -> None:
        print(f"repeat of {ref['trial_id']}: {line}", flush=True)

    answer = await_original(fs, original, own, same_run=same_run, say=say)
    if answer.checkpoint is None:
        print(f"repeat of {ref['trial_id']}: {answer.why}; training it here", flush=True)
        return False
    local = Path(tempfile.mkdtemp(prefix="robprune-repeat-"))
    try:
        storage.copy_tree(answer.checkpoint, str(local), source_fs=fs)
        if not (local / FINAL_DIR / RESULT_FILE).is_file() and not read_progress(local)["epochs"]:
            print(f"repeat of {ref['trial_id']}: its checkpoint holds no result; training it here")
            return False
        (local / REPLAY_FILE).write_text(json.dumps(ref) + "\n")
        _report_again(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return True


def _report_again(local: Path) -> None:
    """The original's per-epoch reports, then its last (final) report with its checkpoint."""
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
