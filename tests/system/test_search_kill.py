"""Kill the driver at the phase boundaries of one experiment, resume each time.

The short CI version of `tools/soak_resume.py`: one optimize + ASHA search on digits is
SIGKILLed the moment it crosses each of these boundaries in turn, each kill hitting the
resume of the previous one: the spec written, the dense stage, the first trial started, a new
Tune snapshot, a checkpoint newer than any the previous kills left, a trial's end, the
Parquet export, and a checkpoint of an `--extend` run. Only the driver is killed, so each
resume must also end the Ray processes the dead driver left. Before the last resume an Optuna
trial that Tune never saw is planted in the journal (what a kill between an ask and Tune's
next snapshot leaves): it must be failed as never started and replaced, not counted.
After the last resume: the planned trials (from the spec and the --extend asked for) are in
trials.parquet exactly once, none that had a checkpoint restarted from zero, none that had
finished ran again, no Optuna trial is RUNNING, no process of a killed driver's Ray remains.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_record import check, newest_checkpoints  # noqa: E402
from soak_resume import Driver, kill_at, soak_spec  # noqa: E402


def _plant_unstarted_trial(exp: Path, run: str) -> int:
    """An Optuna trial asked for `run` whose Tune trial no snapshot knows."""
    import optuna

    from search.run.study import RUN_ATTR, TUNE_TRIAL_ATTR, open_storage

    study = optuna.load_study(study_name="k", storage=open_storage(exp / "optuna" / "journal.log"))
    trial = study.ask()
    trial.set_user_attr(TUNE_TRIAL_ATTR, "00000ghost")
    trial.set_user_attr(RUN_ATTR, run)
    return trial.number


def test_kill_at_phase_boundaries_then_resume(tmp_path):
    spec = soak_spec(str(tmp_path / "exps"), "optimize", epochs=3)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    exp = tmp_path / "exps" / "k"
    log = tmp_path / "drivers.log"
    kills = []

    def command(*extra: str) -> list[str]:
        if (exp / "experiment.json").exists():
            return ["resume", str(exp), *extra]
        return ["search", str(spec_path), "--name", "k"]

    for aim in (
        "spec written",
        "dense stage",
        "first trial started",
        "first tune snapshot",
        "first checkpoint",
        "trial end",
        "export",
    ):
        before = newest_checkpoints(exp)
        driver, kill = kill_at(command(), exp, log, aim, timeout=600)
        assert kill is not None, f"{aim}: the driver ended first\n{log.read_text()[-3000:]}"
        if aim == "first checkpoint":  # newer than every checkpoint an earlier kill left
            assert newest_checkpoints(exp) - before
        kills.append(kill)
    driver, kill = kill_at(command("--extend", "2"), exp, log, "first checkpoint", timeout=600)
    assert kill is not None and any(exp.glob("tune/run-001/trial_*/checkpoint_*"))
    kills.append(kill)
    ghost = _plant_unstarted_trial(exp, "run-001")

    final = Driver.start(command(), log)
    assert final.finish(timeout=600) == 0, log.read_text()[-4000:]
    assert "reconciled run-001" in final.text() and "never started" in final.text()
    sessions = [k.session for k in kills if k.session]
    assert len(sessions) >= len(kills) - 1, sessions  # all but the first had started Ray
    verdict = check(exp, spec, [k.state for k in kills], sessions, extends=2)
    assert verdict.problems == [] and verdict.lost == 0 and verdict.duplicated == 0, (
        verdict,
        log.read_text()[-4000:],
    )
    import optuna
    import pyarrow.parquet as pq

    from search.run.study import NEVER_STARTED, open_storage

    study = optuna.load_study(study_name="k", storage=open_storage(exp / "optuna" / "journal.log"))
    planted = study.trials[ghost]
    assert planted.state.name == "FAIL" and planted.user_attrs["fail_reason"] == NEVER_STARTED
    trials = pq.read_table(exp / "results" / "trials.parquet").to_pylist()
    assert len(trials) == 4 + 2
    assert any((t["restores"] or 0) > 0 and t["restored_from_epoch"] >= 1 for t in trials), trials
