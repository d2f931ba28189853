"""What the resume soak reads on disk: the phase a driver reached, the trials, the invariants.

Shared by `tools/soak_resume.py` (the long soak) and the CI tests that kill drivers
(`tests/system/test_search_kill.py`, `tests/system/test_search_interrupt.py`). The number of
trials a
search must end with is computed from the spec (and the `--extend` runs the caller asked
for), never from the experiment's own record: a run that recorded itself as smaller than
planned must count as lost trials.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "PHASES",
    "RESUME_PHASES",
    "evidence",
    "phase_reached",
    "TrialAtKill",
    "disk_state",
    "newest_checkpoints",
    "session_of",
    "planned_trials",
    "Verdict",
    "check",
]


# ----------------------------------------------------------------------------- phases

#: Phase boundaries of one search, in the order a new search meets them. Each is detected by
#: what it leaves in the experiment directory (or, for Tune's start, in the driver's output).
PHASES = (
    "spec written",
    "segment added",
    "dense stage",
    "tune started",
    "first trial started",
    "first tune snapshot",
    "first checkpoint",
    "trial end",
    "export",
)
#: The phases a resume meets again (it neither writes the spec nor trains the dense model).
RESUME_PHASES = PHASES[3:]


def _glob(exp: Path, pattern: str) -> set[str]:
    try:
        return {str(p.relative_to(exp)) for p in exp.glob(pattern)}
    except OSError:  # a directory removed while we looked (a checkpoint Tune rotated out)
        return set()


def _segments(exp: Path) -> set[str]:
    try:
        state = json.loads((exp / "experiment.json").read_text())
    except (OSError, ValueError):
        return set()
    return {f"segment:{s['name']}" for s in state.get("segments", [])}


def _tune_started(exp: Path, output: str) -> set[str]:
    """A new search writes tuner.pkl; a resume prints "resuming RUN" before Tune restores."""
    return _glob(exp, "tune/run-*/tuner.pkl") | (
        {"resuming"} if "resuming run-" in output else set()
    )


_EVIDENCE: dict[str, Callable[[Path, str], set[str]]] = {
    "spec written": lambda exp, out: _glob(exp, "spec.yaml"),
    "segment added": lambda exp, out: _segments(exp),
    "dense stage": lambda exp, out: _glob(exp, "dense/**/*"),
    "tune started": lambda exp, out: _tune_started(exp, out),
    "first trial started": lambda exp, out: _glob(exp, "tune/run-*/trial_*"),
    "first tune snapshot": lambda exp, out: _glob(exp, "tune/run-*/experiment_state-*.json"),
    "first checkpoint": lambda exp, out: _glob(exp, "tune/run-*/trial_*/checkpoint_*"),
    "trial end": lambda exp, out: _glob(exp, "tune/run-*/trial_*/robprune-end.json"),
    "export": lambda exp, out: _glob(exp, ".results-staging-*"),
}


def evidence(exp: Path, output: str = "") -> dict[str, set[str]]:
    """Per phase, what on disk (or in the output) shows it was reached."""
    return {phase: find(exp, output) for phase, find in _EVIDENCE.items()}


def phase_reached(phase: str, exp: Path, output: str, before: dict[str, set[str]]) -> bool:
    """Whether the driver reached `phase` since `before` (evidence taken when it started)."""
    return bool(_EVIDENCE[phase](exp, output) - before.get(phase, set()))


def latest_phase(exp: Path, output: str, before: dict[str, set[str]]) -> str:
    """The last phase boundary this driver crossed ("startup" if none yet)."""
    crossed = [p for p in PHASES if phase_reached(p, exp, output, before)]
    return crossed[-1] if crossed else "startup"


# ----------------------------------------------------------------------------- trials


def _checkpoint_epoch(ckpt: Path) -> int:
    try:
        return int(json.loads((ckpt / "progress.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _restored_from(ckpt: Path) -> list[int]:
    try:
        return list(json.loads((ckpt / "progress.json").read_text())["restored_from"])
    except (OSError, ValueError, KeyError):
        return []


@dataclass
class TrialAtKill:
    finished: bool
    epoch: int  # epoch of the newest checkpoint (0: none)
    restores: int
    seen_at: float = 0.0  # when this was read (time.time()); 0: unknown


def disk_state(exp: Path) -> dict[str, TrialAtKill]:
    """Per trial directory: finished, newest checkpointed epoch, restores so far."""
    out, seen = {}, time.time()
    for trial in sorted((exp / "tune").glob("run-*/trial_*")):
        try:
            ckpts = sorted(trial.glob("checkpoint_*"))
            final = [c for c in ckpts if (c / "final" / "result.json").is_file()]
            finished = bool(final) or (trial / "robprune-end.json").exists()
            newest = final[-1] if final else (ckpts[-1] if ckpts else None)
            epoch = max((_checkpoint_epoch(c) for c in ckpts), default=0)
            restores = len(_restored_from(newest)) if newest else 0
        except OSError:  # a checkpoint removed while we looked
            continue
        out[trial.name.removeprefix("trial_")] = TrialAtKill(finished, epoch, restores, seen)
    return out


def newest_checkpoints(exp: Path, run: str = "run-*") -> set[str]:
    """Every epoch checkpoint of unfinished trials (to wait for one newer than a kill's)."""
    out = set()
    for trial in exp.glob(f"tune/{run}/trial_*"):
        if (trial / "robprune-end.json").exists():
            continue
        out |= {str(c.relative_to(exp)) for c in trial.glob("checkpoint_*")}
    return out


def session_of(exp: Path) -> str | None:
    try:
        record = json.loads((exp / "driver.json").read_text())
    except (OSError, ValueError):
        return None
    return record.get("ray_temp_dir")


def planned_trials(spec: dict[str, Any], extends: int = 0) -> int:
    """Trials the spec asks for, plus the `--extend` trials the caller asked for."""
    if spec["search"]["mode"] == "grid":
        sys.path.insert(0, str(ROOT))
        from search.spec.grid import grid_configs
        from search.spec.parse import parse_spec

        return len(grid_configs(parse_spec(spec, name="x", storage="/tmp"), "/tmp"))
    return int(spec["search"]["num_samples"]) + extends


# ----------------------------------------------------------------------------- invariants


@dataclass
class Verdict:
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)


def _rerun_problems(
    exp: Path, by_id: dict[str, dict[str, Any]], kills: list[dict[str, TrialAtKill]]
) -> list[str]:
    """A trial finished at a kill ran again; one with a checkpoint restarted from zero."""
    problems = []
    for k, state in enumerate(kills):
        for tid, at in state.items():
            row = by_id.get(tid)
            if row is None:
                continue
            if at.finished and (row["restores"] or 0) != at.restores:
                problems.append(f"kill {k + 1}: {tid} had finished but ran again")
            if not at.finished and at.epoch > 0:
                history = _final_history(exp, tid)
                continued = history is not None and any(e >= at.epoch for e in history)
                if history is not None and not continued and _trained_again(exp, tid, at):
                    problems.append(
                        f"kill {k + 1}: {tid} had epoch {at.epoch} checkpointed but restarted "
                        f"from {history or 'zero'}"
                    )
    return problems


def _trained_again(exp: Path, tid: str, at: TrialAtKill) -> bool:
    """Whether the trial reported an epoch before `at.epoch` after the kill: trained again
    from zero. A trial whose orphaned worker finished it after the driver's kill (its final
    checkpoint then shows no restore) reported nothing earlier and is not.

    Tune's `timestamp` is whole seconds (`int(time.time())` at the report), so a row from the
    second the kill was seen in may predate it (a digits epoch takes a fraction of a second);
    only a row stamped after `seen_at` is surely later. A resume reports nothing within a
    second of the kill (it starts Ray first), so no restart is missed."""
    if not at.seen_at:
        return True
    for path in exp.glob(f"tune/run-*/trial_{tid}/result.json"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line a kill cut short
            epoch, stamp = row.get("epoch"), row.get("timestamp", 0)
            if isinstance(epoch, int) and epoch < at.epoch and stamp > at.seen_at:
                return True
    return False


def _study_problems(exp: Path, by_id: dict[str, dict[str, Any]], verdict: Verdict) -> None:
    import optuna

    from search.run.study import open_storage

    storage = open_storage(exp / "optuna" / "journal.log")
    (name,) = optuna.get_all_study_names(storage)  # named after the experiment
    study = optuna.load_study(study_name=name, storage=storage)
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    if running:
        verdict.problems.append(f"Optuna trials left RUNNING: {running}")
    complete: dict[str, int] = {}
    for t in study.trials:
        if t.state.name == "COMPLETE":
            tid = t.user_attrs.get("tune_trial_id")
            complete[tid] = complete.get(tid, 0) + 1
    twice = [tid for tid, n in complete.items() if n > 1]
    if twice:
        verdict.duplicated += len(twice)
        verdict.problems.append(f"Tune trials with two COMPLETE Optuna trials: {twice}")
    missing = [tid for tid in by_id if tid not in complete]
    if missing:
        verdict.problems.append(f"Tune trials without a COMPLETE Optuna trial: {missing}")
    extra = [tid for tid in complete if tid not in by_id]
    if extra:
        verdict.lost += len(extra)
        verdict.problems.append(f"COMPLETE Optuna trials missing from the table: {extra}")


def check(
    exp: Path,
    spec: dict[str, Any],
    kills: list[dict[str, TrialAtKill]],
    sessions: list[str],
    *,
    extends: int = 0,
) -> Verdict:
    """The invariants after a completed resume: planned trials (from the spec) = rows, each
    once, none rerun, none restarted from zero, no Optuna trial RUNNING, no Ray left over."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from robprune.io.results_schema import TRIALS_SCHEMA
    from search.run.ownership import session_processes

    verdict = Verdict()
    table = pq.read_table(exp / "results" / "trials.parquet")
    if table.schema.names != TRIALS_SCHEMA.names:
        verdict.problems.append("trials.parquet columns differ from the schema")
    trials = table.to_pylist()
    ids = [t["trial_id"] for t in trials]
    want = planned_trials(spec, extends)
    verdict.duplicated = len(ids) - len(set(ids)) + max(0, len(set(ids)) - want)
    verdict.lost = max(0, want - len(set(ids)))
    if spec["search"]["mode"] == "grid":
        cells = [json.loads(t["config_json"])["prune"] for t in trials]
        keys = [(c["sparsity"], c["criterion"]) for c in cells]
        verdict.duplicated += len(keys) - len(set(keys))
    bad = [t["trial_id"] for t in trials if t["status"] != "TERMINATED"]
    if bad:
        verdict.problems.append(f"not TERMINATED: {bad}")
    by_id = {t["trial_id"]: t for t in trials}
    verdict.problems += _rerun_problems(exp, by_id, kills)
    epochs = pq.read_table(exp / "results" / "epochs.parquet").to_pylist()
    for t in trials:
        got = sorted(e["epoch"] for e in epochs if e["trial_id"] == t["trial_id"])
        if got != list(range(1, len(got) + 1)):
            verdict.problems.append(f"{t['trial_id']}: epochs {got}")
    if spec["search"]["mode"] != "grid":
        _study_problems(exp, by_id, verdict)
    state = json.loads((exp / "experiment.json").read_text())
    unfinished = [s["name"] for s in state["segments"] if s["status"] != "finished"]
    if unfinished:
        verdict.problems.append(f"runs not finished: {unfinished}")
    for session in sessions:
        left = session_processes(session)
        if left:
            verdict.problems.append(f"{len(left)} processes of {Path(session).name} still run")
    return verdict


def _final_history(exp: Path, tid: str) -> list[int] | None:
    for trial in (exp / "tune").glob(f"run-*/trial_{tid}"):
        ckpts = sorted(trial.glob("checkpoint_*"))
        if ckpts:
            return _restored_from(ckpts[-1])
    return None
