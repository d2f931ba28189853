"""Soak test of resume: kill the search driver at random moments, resume, check invariants.

    python tools/soak_resume.py --kills 20 --seed 0 [--mode optimize|random|grid] [--keep DIR]

Runs a small digits search, SIGKILLs the driver (only the driver: the Ray processes it left
behind are the resume's job to end) at seeded random moments, resumes each time (sometimes
with `--extend 1`, sometimes killing the resume too), lets a final resume finish, and checks
after every round:

- every trial of the spec is in `trials.parquet` exactly once (lost / duplicated counts);
- a trial finished at the kill was not run again, and an unfinished trial with a checkpoint
  was not rerun from zero (it resumed from that checkpoint's epoch or later);
- no Optuna trial is left RUNNING, and each Tune trial has exactly one COMPLETE Optuna trial;
- the Ray processes of every killed driver's session are gone.

Prints `N kills, N resumed, 0 lost, 0 duplicated` (and what broke, if anything); exit 0 only
when nothing broke. The CI test `tests/test_search_kill.py` uses the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "TUNE_GLOBAL_CHECKPOINT_S": "1",
    "OMP_NUM_THREADS": "1",
}


def soak_spec(storage: str, mode: str = "optimize", epochs: int = 3) -> dict[str, Any]:
    """A digits search that finishes in about a minute on two busy cores."""
    search: dict[str, Any] = {"mode": mode, "max_concurrent": 2}
    if mode == "grid":
        search["scheduler"] = "none"
    else:
        search.update(num_samples=4, scheduler="asha")
    return {
        "name": "soak",
        "storage": storage,
        "seed": 0,
        "data": {"dataset": "digits", "train_limit": 300},
        "model": {"arch": "small_cnn", "width": 0.5},
        "dense": {"method": "ce", "epochs": 2, "lr": 0.05, "batch_size": 64},
        "prune": {
            "sparsity": {"choice": [0.3, 0.5]},
            "criterion": {"choice": ["l1", "random"]},
            "ratio": "uniform",
        },
        "finetune": {"method": "ce", "epochs": epochs, "lr": 0.01, "batch_size": 64},
        "threat": {"train_steps": 2, "eval_steps": 3},
        "eval": {
            "attacks": ["fgsm"],
            "primary": "fgsm",
            "epoch_attack": "fgsm",
            "epoch_subset": 100,
            "test_limit": 100,
        },
        "search": search,
        "resources": {"cpu": 1},
    }


# ----------------------------------------------------------------------------- drivers


@dataclass
class Driver:
    """One `robprune search|resume` process, in its own session (signals reach only it)."""

    proc: subprocess.Popen
    log: Path
    offset: int = 0  # where this driver's output begins in the shared log
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, args: list[str], log: Path) -> Driver:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **ENV, "PYTHONPATH": path}
        handle = open(log, "a")
        handle.write(f"\n$ robprune {' '.join(args)}\n")
        handle.flush()
        offset = handle.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "robprune.cli", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        handle.close()
        return cls(proc=proc, log=log, offset=offset)

    def running(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        """This driver's output so far."""
        with open(self.log, "rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode(errors="replace")

    def wait_for(self, condition: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
        """Whether `condition` held while the driver still ran."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            if condition():
                return True
            time.sleep(poll)
        return False

    def kill(self) -> None:
        """SIGKILL the driver alone: what a crash, an OOM kill or a lost login does."""
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)

    def finish(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


def phase_of(exp: Path, text: str) -> str:
    """Where a driver was when it was killed, from its output and the experiment directory."""
    if any(exp.glob(".results-*")):
        return "export"
    if "experiment:" not in text:
        return "startup"
    if "dense stage" in text and "ready after" not in text:
        return "dense stage"
    if "extending the study" in text:
        return "extend run"
    if "started " in text or "resuming" in text:
        return "trials running"
    return "before trials"


# ----------------------------------------------------------------------------- the record


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


def disk_state(exp: Path) -> dict[str, TrialAtKill]:
    """Per trial directory: finished, newest checkpointed epoch, restores so far."""
    out = {}
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
        out[trial.name.removeprefix("trial_")] = TrialAtKill(finished, epoch, restores)
    return out


def session_of(exp: Path) -> str | None:
    try:
        record = json.loads((exp / "driver.json").read_text())
    except (OSError, ValueError):
        return None
    return record.get("ray_temp_dir")


def expected_trials(exp: Path, spec: dict[str, Any]) -> int:
    """Trials the spec and its --extend runs ask for (grid: the factorial)."""
    if spec["search"]["mode"] == "grid":
        sys.path.insert(0, str(ROOT))
        from search.spec.grid import grid_configs
        from search.spec.parse import parse_spec

        return len(grid_configs(parse_spec(spec, name="x", storage="/tmp"), "/tmp"))
    state = json.loads((exp / "experiment.json").read_text())
    return sum(int(s["num_samples"] or 0) for s in state["segments"])


@dataclass
class Verdict:
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)


def check(
    exp: Path,
    spec: dict[str, Any],
    kills: list[dict[str, TrialAtKill]],
    sessions: list[str],
) -> Verdict:
    """The invariants of issue 8 point 2 after a completed resume."""
    import optuna
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
    want = expected_trials(exp, spec)
    verdict.duplicated = len(ids) - len(set(ids))
    verdict.lost = max(0, want - len(set(ids)))
    if len(set(ids)) > want:
        verdict.duplicated += len(set(ids)) - want
    if spec["search"]["mode"] == "grid":
        cells = [json.loads(t["config_json"])["prune"] for t in trials]
        keys = [(c["sparsity"], c["criterion"]) for c in cells]
        verdict.duplicated += len(keys) - len(set(keys))
    bad = [t["trial_id"] for t in trials if t["status"] != "TERMINATED"]
    if bad:
        verdict.problems.append(f"not TERMINATED: {bad}")
    by_id = {t["trial_id"]: t for t in trials}
    for k, state in enumerate(kills):
        for tid, at in state.items():
            row = by_id.get(tid)
            if row is None:
                continue
            restores = row["restores"] or 0
            if at.finished and restores != at.restores:
                verdict.problems.append(f"kill {k + 1}: {tid} had finished but ran again")
            if not at.finished and at.epoch > 0:
                history = _final_history(exp, tid)
                if history is not None and not any(e >= at.epoch for e in history):
                    verdict.problems.append(
                        f"kill {k + 1}: {tid} had epoch {at.epoch} checkpointed but restarted "
                        f"from {history or 'zero'}"
                    )
    epochs = pq.read_table(exp / "results" / "epochs.parquet").to_pylist()
    for t in trials:
        got = sorted(e["epoch"] for e in epochs if e["trial_id"] == t["trial_id"])
        if got != list(range(1, len(got) + 1)):
            verdict.problems.append(f"{t['trial_id']}: epochs {got}")
    if spec["search"]["mode"] != "grid":
        from search.run.study import open_storage

        storage = open_storage(exp / "optuna" / "journal.log")
        study = optuna.load_study(study_name="robprune", storage=storage)
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


# ----------------------------------------------------------------------------- the soak


def soak(kills: int, seed: int, mode: str, work: Path, max_delay: float) -> int:
    import yaml

    rng = random.Random(seed)
    spec = soak_spec(str(work / "exps"), mode)
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    log = work / "drivers.log"
    done_kills = resumed = rounds = 0
    lost = duplicated = 0
    phases: dict[str, int] = {}
    problems: list[str] = []
    states: list[dict[str, TrialAtKill]] = []
    sessions: list[str] = []
    name = "soak-1"
    exp = work / "exps" / name
    args = ["search", str(spec_path), "--name", name]
    while done_kills < kills:
        rounds += 1
        driver = Driver.start(args, log)
        delay = rng.uniform(0.5, max_delay)
        driver.wait_for(lambda: False, timeout=delay)
        killed_now = driver.running()
        if not killed_now:  # finished before the kill: aim earlier next time
            max_delay = max(2.0, 0.8 * (time.monotonic() - driver.started))
        else:
            phase = phase_of(exp, driver.text())
            driver.kill()
            done_kills += 1
            phases[phase] = phases.get(phase, 0) + 1
            states.append(disk_state(exp))
            if session_of(exp):
                sessions.append(str(session_of(exp)))
            print(f"kill {done_kills}/{kills}: after {delay:.1f} s ({phase})", flush=True)
        if not exp.joinpath("experiment.json").exists():
            continue  # killed before the experiment existed: search again
        resumed += killed_now
        extend = args[0] == "resume" and "--extend" in args
        args = ["resume", str(exp)]
        if done_kills < kills and rng.random() < 0.3:
            continue  # the next round kills the resume too (twice in a row)
        final = Driver.start(args, log)
        code = final.finish()
        # kill moments should cover a whole run: aim up to the longest run seen so far
        max_delay = max(max_delay, time.monotonic() - final.started)
        if code != 0:
            problems.append(f"round {rounds}: resume exited {code} (see {log})")
            break
        verdict = check(exp, spec, states, sessions)
        lost, duplicated = max(lost, verdict.lost), max(duplicated, verdict.duplicated)
        problems += [f"round {rounds}: {p}" for p in verdict.problems]
        if problems:
            break
        print(f"round {rounds}: resumed and checked ({'extend' if extend else 'run'})")
        if mode != "grid" and rng.random() < 0.7:  # the next kill hits an --extend run
            args = ["resume", str(exp), "--extend", "1"]
        else:  # or a new experiment
            name = f"soak-{rounds + 1}"
            exp = work / "exps" / name
            args = ["search", str(spec_path), "--name", name]
    print(f"phases: {', '.join(f'{k} {v}' for k, v in sorted(phases.items()))}")
    print(f"{done_kills} kills, {resumed} resumed, {lost} lost, {duplicated} duplicated")
    for problem in problems:
        print(f"BROKEN: {problem}")
    return 0 if not problems and not lost and not duplicated else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="how many times to kill (N)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--mode", default="optimize", choices=["optimize", "random", "grid"])
    parser.add_argument("--max-delay", type=float, default=60.0, help="latest kill moment (s)")
    parser.add_argument("--keep", default=None, help="work directory to keep (default: temp)")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="robprune-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.kills} kills, seed {args.seed}, {args.mode}; work in {work}", flush=True)
    return soak(args.kills, args.seed, args.mode, work, args.max_delay)


if __name__ == "__main__":
    raise SystemExit(main())
