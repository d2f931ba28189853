"""Kill the driver at distinct phases of one experiment, resume each time (issue 8, point 2).

One optimize + ASHA search on digits is SIGKILLed in the dense stage, while trials run, twice
in a row (the resume is killed too), during the Parquet export and during an `--extend` run;
only the driver is killed, so each resume must also end the Ray processes the dead driver left.
After the last resume: every trial of the spec is in trials.parquet exactly once, none that
had a checkpoint was rerun from zero, none that had finished ran again, no Optuna trial is left
RUNNING, and no process of a killed driver's Ray remains. The checks are the soak tool's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from soak_resume import Driver, check, disk_state, session_of, soak_spec  # noqa: E402


def _checkpointed(exp: Path, run: str) -> bool:
    """Some trial of `run` has an epoch checkpoint and has not finished."""
    return any(
        not at.finished and at.epoch > 0
        for tid, at in disk_state(exp).items()
        if (exp / "tune" / run / f"trial_{tid}").exists()
    )


def test_kill_at_every_phase_then_resume(tmp_path):
    spec = soak_spec(str(tmp_path / "exps"), "optimize", epochs=3)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    exp = tmp_path / "exps" / "k"
    log = tmp_path / "drivers.log"
    states, sessions, phases = [], [], []

    def kill(driver: Driver, phase: str) -> None:
        assert driver.running(), f"{phase}: the driver ended first\n{log.read_text()[-3000:]}"
        driver.kill()
        states.append(disk_state(exp))
        sessions.append(session_of(exp))
        phases.append(phase)

    def resume(*extra: str) -> Driver:
        return Driver.start(["resume", str(exp), *extra], log)

    # 1. the dense stage
    driver = Driver.start(["search", str(spec_path), "--name", "k"], log)
    assert driver.wait_for(lambda: "dense stage:" in driver.text(), timeout=240)
    kill(driver, "dense stage")
    # 2. trials running, with epoch checkpoints on disk
    driver = resume()
    assert driver.wait_for(lambda: _checkpointed(exp, "run-000"), timeout=300)
    kill(driver, "trials running")
    # 3. twice in a row: the resume is killed too, once it restored the run
    driver = resume()
    assert driver.wait_for(lambda: "resuming run-000" in driver.text(), timeout=300)
    assert driver.wait_for(lambda: _checkpointed(exp, "run-000"), timeout=300)
    kill(driver, "resume killed again")
    # 4. the Parquet export (the staging directory of results/ exists)
    driver = resume()
    assert driver.wait_for(lambda: any(exp.glob(".results-*")), timeout=600, poll=0.005)
    kill(driver, "export")
    # 5. an --extend run, while its trials run
    driver = resume("--extend", "2")
    assert driver.wait_for(lambda: _checkpointed(exp, "run-001"), timeout=600)
    kill(driver, "extend run")

    final = resume()
    assert final.finish(timeout=600) == 0, log.read_text()[-4000:]
    assert "reconciled run-001" in final.text()
    assert len(sessions) == 5 and all(sessions), sessions
    verdict = check(exp, spec, states, [s for s in sessions if s])
    assert verdict.problems == [] and verdict.lost == 0 and verdict.duplicated == 0, (
        verdict,
        log.read_text()[-4000:],
    )
    import pyarrow.parquet as pq

    trials = pq.read_table(exp / "results" / "trials.parquet").to_pylist()
    assert len(trials) == 4 + 2
    assert any((t["restores"] or 0) > 0 and t["restored_from_epoch"] >= 1 for t in trials), trials
