"""Soak test of resume: kill the search driver at every phase boundary and between, resume.

    python tools/soak_resume.py --rounds 12 --seed 0 [--mode optimize|random|grid] [--keep DIR]
                                [--faults 0.3]

Each round is a new small digits search. Its driver is SIGKILLed (only the driver: the Ray
processes it left behind are the resume's job to end) one to three times in a row (the
resumes are killed too), each kill either the moment a phase boundary is crossed (spec
written, segment added, dense stage, Tune started, first trial started, first Tune snapshot,
first checkpoint, trial end, export; watched in the experiment directory every 10 ms) or at a
random moment up to the longest run seen. The phase boundaries are aimed at in turn, so every
one is hit within a few rounds. A final `resume` must then finish within `--watchdog` seconds
(a hang is killed and counted), and the round checks (`tools/soak_record.py`):

- the trials the spec plans (computed from the spec, never from the experiment's record)
  are in `trials.parquet`, each exactly once (lost / duplicated counts);
- a trial finished at a kill was not run again, and one with a checkpoint was not rerun from
  zero; no Optuna trial is left RUNNING, each Tune trial has exactly one COMPLETE one;
- every run of the experiment is `finished`; no Ray process of a killed driver remains.

With `--faults P` (needs root) the experiments live on a small tmpfs and each step of a round
is, with probability P, a storage fault instead of a kill: the disk fills up or the
experiment stops taking writes at a random moment, the driver must stop by itself (exit 75),
and the fault is lifted before the next resume (`tools/soak_faults.py`).

Prints every kill and fault with the phase it aimed at and the phase the driver had reached,
then `N kills, F storage faults, phases reached K/9, L lost, D duplicated, H hangs` (K counts
the phases the kills and faults landed in, not those aimed at); exit 0 only when nothing
broke.
The CI tests `tests/system/test_search_kill.py` and `tests/system/test_search_interrupt.py`
use the same drivers and checks.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_record import (  # noqa: E402
    PHASES,
    RESUME_PHASES,
    TrialAtKill,
    check,
    disk_state,
    evidence,
    latest_phase,
    phase_reached,
    session_of,
)

__all__ = ["Driver", "Kill", "kill_at", "soak_spec", "check", "disk_state", "session_of"]
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
            [sys.executable, "-m", "cli", *args],
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
        """The exit code; -9 when the driver was still running after `timeout` (a hang)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


# ----------------------------------------------------------------------------- kills


@dataclass
class Kill:
    """One SIGKILL: what it aimed at, the phase the driver had reached, when."""

    aim: str  # a phase of PHASES, or "random"
    reached: str
    after_s: float
    state: dict[str, TrialAtKill] = field(default_factory=dict)
    session: str | None = None


def kill_at(
    args: list[str], exp: Path, log: Path, aim: str, *, delay: float = 0.0, timeout: float = 600
) -> tuple[Driver, Kill | None]:
    """Start a driver and SIGKILL it when it crosses phase `aim` (or after `delay` s when the
    aim is "random"); None when the driver ended first."""
    before = evidence(exp)
    driver = Driver.start(args, log)
    if aim == "random":
        driver.wait_for(lambda: False, timeout=delay)
    else:
        driver.wait_for(
            lambda: phase_reached(aim, exp, driver.text(), before), timeout=timeout, poll=0.01
        )
    if not driver.running():
        return driver, None
    reached = latest_phase(exp, driver.text(), before)
    driver.kill()
    elapsed = time.monotonic() - driver.started
    return driver, Kill(aim, reached, elapsed, disk_state(exp), session_of(exp))


# ----------------------------------------------------------------------------- the soak


@dataclass
class Tally:
    kills: list[Kill] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    hangs: int = 0
    faults: list[Any] = field(default_factory=list)  # soak_faults.Fault
    problems: list[str] = field(default_factory=list)
    longest: float = 60.0  # the longest driver run seen (random kill moments go up to it)
    aim_index: int = 0

    def next_aim(self, rng: random.Random, allowed: tuple[str, ...]) -> str:
        """Phase boundaries in turn (so each is hit within a few rounds), some random."""
        if rng.random() < 0.25:
            return "random"
        aim = PHASES[self.aim_index % len(PHASES)]
        self.aim_index += 1
        return aim if aim in allowed else rng.choice(allowed)


def soak_round(
    r: int,
    rng: random.Random,
    tally: Tally,
    work: Path,
    spec: dict,
    watchdog: float,
    disk: Any = None,
    faults: float = 0.0,
) -> None:
    """One experiment: one to three kills or storage faults in a row, a final resume, the
    checks."""
    log, name = work / "drivers.log", f"soak-{r}"
    exp = Path(spec["storage"]) / name
    args = ["search", str(work / "spec.yaml"), "--name", name]
    kills: list[Any] = []
    for _ in range(rng.choice((1, 2, 2, 3))):
        if disk is not None and rng.random() < faults:
            delay = rng.uniform(0.5, 0.6 * tally.longest)  # a fault after the end tests nothing
            if not _fault_step(r, rng, tally, args, exp, log, disk, delay, watchdog, kills):
                break
        else:
            aim = tally.next_aim(rng, PHASES if args[0] == "search" else RESUME_PHASES)
            delay = rng.uniform(0.5, tally.longest)
            driver, kill = kill_at(args, exp, log, aim, delay=delay, timeout=watchdog)
            tally.longest = max(tally.longest, time.monotonic() - driver.started)
            if kill is None:
                print(f"round {r}: the driver ended before {aim} (exit {driver.proc.returncode})")
                break
            kills.append(kill)
            tally.kills.append(kill)
            where = f"aimed at {aim}, reached {kill.reached}, after {kill.after_s:.1f} s"
            print(f"round {r} kill {len(kills)}: {where}", flush=True)
        if (exp / "experiment.json").exists():
            args = ["resume", str(exp)]
    if (exp / "experiment.json").exists():  # also when a driver ended before its kill or fault
        args = ["resume", str(exp)]
    final = Driver.start(args, log)
    code = final.finish(timeout=watchdog)
    tally.longest = max(tally.longest, time.monotonic() - final.started)
    if code == -9:
        tally.hangs += 1
        tally.problems.append(f"round {r}: the final resume hung (> {watchdog:.0f} s)")
        return
    if code != 0:
        tally.problems.append(f"round {r}: the final resume exited {code} (see {log})")
        return
    sessions = [k.session for k in kills if getattr(k, "session", None)]
    verdict = check(exp, spec, [k.state for k in kills], sessions)
    tally.lost += verdict.lost
    tally.duplicated += verdict.duplicated
    tally.problems += [f"round {r}: {p}" for p in verdict.problems]
    print(f"round {r}: resumed and checked ({len(kills)} kills and faults)", flush=True)
    if disk is not None and not verdict.problems:
        shutil.rmtree(exp, ignore_errors=True)  # the small disk holds one round at a time


def _fault_step(
    r: int,
    rng: random.Random,
    tally: Tally,
    args: list[str],
    exp: Path,
    log: Path,
    disk: Any,
    delay: float,
    watchdog: float,
    kills: list[Any],
) -> bool:
    """One storage fault in a round; False when the driver ended before it."""
    from soak_faults import FAULT_KINDS, fault_at

    kind = rng.choice(FAULT_KINDS)
    driver, fault = fault_at(args, exp, log, disk, kind, delay=delay, timeout=watchdog)
    tally.longest = max(tally.longest, time.monotonic() - driver.started)
    if fault is None:
        print(f"round {r}: the driver ended before the {kind} fault")
        return False
    tally.faults.append(fault)
    kills.append(fault)
    where = f"{kind} after {fault.after_s:.1f} s at {fault.reached}: exit {fault.exit_code}"
    print(f"round {r} fault {len(kills)}: {where}  {fault.line}", flush=True)
    if fault.exit_code == -9:
        tally.hangs += 1
    if not fault.accepted:
        tally.problems.append(
            f"round {r}: after a {kind} fault the driver exited {fault.exit_code}"
        )
    return True


def soak(
    rounds: int, seed: int, mode: str, work: Path, watchdog: float, faults: float = 0.0
) -> int:
    if faults > 0:
        from soak_faults import SmallDisk

        with SmallDisk(work / "disk") as disk:
            return _soak(rounds, seed, mode, work, watchdog, disk, faults)
    return _soak(rounds, seed, mode, work, watchdog, None, 0.0)


def _soak(
    rounds: int, seed: int, mode: str, work: Path, watchdog: float, disk: Any, faults: float
) -> int:
    import yaml

    rng, tally = random.Random(seed), Tally()
    root = disk.mount if disk is not None else work
    spec = soak_spec(str(root / "exps"), mode)
    (work / "spec.yaml").write_text(yaml.safe_dump(spec))
    for r in range(1, rounds + 1):
        soak_round(r, rng, tally, work, spec, watchdog, disk, faults)
    # coverage is what the kills reached, not what they aimed at: an aimed kill can land late
    counts: dict[str, int] = {}
    for k in [*tally.kills, *tally.faults]:
        counts[k.reached] = counts.get(k.reached, 0) + 1
    covered = {p for p in PHASES if p in counts}
    missed = sorted({k.aim for k in tally.kills if k.aim != "random"} - covered)
    reached = ", ".join(f"{p} {n}" for p, n in counts.items())
    print(f"phases reached at the kills and faults: {reached}")
    if missed:
        print(f"aimed at but never reached: {', '.join(missed)}")
    if tally.faults:
        exits: dict[str, int] = {}
        for f in tally.faults:
            key = f"{f.kind} exit {f.exit_code}"
            exits[key] = exits.get(key, 0) + 1
        print(f"storage faults: {', '.join(f'{k} x{n}' for k, n in sorted(exits.items()))}")
    print(
        f"{len(tally.kills)} kills, {len(tally.faults)} storage faults, phases reached "
        f"{len(covered)}/{len(PHASES)}, {tally.lost} lost, {tally.duplicated} duplicated, "
        f"{tally.hangs} hangs"
    )
    for problem in tally.problems:
        print(f"BROKEN: {problem}")
    broken = tally.problems or tally.lost or tally.duplicated or tally.hangs
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="experiments (1-3 kills each)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kills")
    parser.add_argument("--mode", default="optimize", choices=["optimize", "random", "grid"])
    parser.add_argument("--watchdog", type=float, default=900.0, help="a resume's limit (s)")
    parser.add_argument("--keep", default=None, help="work directory to keep (default: temp)")
    parser.add_argument(
        "--faults", type=float, default=0.0, help="share of steps that are storage faults (root)"
    )
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="robprune-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.rounds} rounds, seed {args.seed}, {args.mode}; work in {work}", flush=True)
    return soak(args.rounds, args.seed, args.mode, work, args.watchdog, args.faults)


if __name__ == "__main__":
    raise SystemExit(main())
