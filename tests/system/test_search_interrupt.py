"""Ctrl-C: SIGINT to the driver's process group, as a terminal sends it.

The first SIGINT stops cleanly: exit 130, a message that says how to resume, the Ray processes
the search started are gone, and a resume finishes the experiment with every trial once. A
second SIGINT exits at once, also with 130 and without leaving Ray processes behind, and a
resume then finishes that experiment too, with the same checks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_record import check, disk_state  # noqa: E402
from soak_resume import Driver, soak_spec  # noqa: E402


def _running_trials(exp: Path) -> bool:
    return any(not at.finished and at.epoch > 0 for at in disk_state(exp).values())


def _ray_dir(exp: Path) -> str:
    return json.loads((exp / "driver.json").read_text())["ray_temp_dir"]


def _gone(ray_dir: str, timeout: float = 20) -> list[int]:
    from search.run.ownership import session_processes

    deadline = time.monotonic() + timeout
    left = session_processes(ray_dir)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = session_processes(ray_dir)
    return left


def _start(tmp_path: Path, name: str) -> tuple[Driver, Path, dict]:
    spec = soak_spec(str(tmp_path / "exps"), "optimize", epochs=8)
    spec["search"]["scheduler"] = "none"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    driver = Driver.start(["search", str(path), "--name", name], tmp_path / "driver.log")
    exp = tmp_path / "exps" / name
    assert driver.wait_for(lambda: _running_trials(exp), timeout=400), driver.text()[-3000:]
    return driver, exp, spec


def test_first_sigint_stops_cleanly_and_resume_finishes(tmp_path):
    driver, exp, spec = _start(tmp_path, "once")
    os.killpg(driver.proc.pid, signal.SIGINT)
    assert driver.finish(timeout=180) == 130, driver.text()[-3000:]
    text = driver.text()
    assert f"robprune resume {exp}" in text
    assert _gone(_ray_dir(exp)) == []
    state = json.loads((exp / "experiment.json").read_text())
    assert state["segments"][0]["status"] == "interrupted"
    at_stop = disk_state(exp)

    final = Driver.start(["resume", str(exp)], tmp_path / "driver.log")
    assert final.finish(timeout=600) == 0, final.text()[-3000:]
    verdict = check(exp, spec, [at_stop], [_ray_dir(exp)])
    assert verdict.problems == [] and not verdict.lost and not verdict.duplicated, verdict


def test_second_sigint_exits_at_once_and_resume_finishes(tmp_path):
    driver, exp, spec = _start(tmp_path, "twice")
    os.killpg(driver.proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(driver.proc.pid, signal.SIGINT)
    start = time.monotonic()
    assert driver.finish(timeout=60) == 130, driver.text()[-3000:]
    assert time.monotonic() - start < 10
    assert "exiting now" in driver.text() and f"robprune resume {exp}" in driver.text()
    ray_dir = _ray_dir(exp)
    assert _gone(ray_dir) == []
    at_stop = disk_state(exp)

    final = Driver.start(["resume", str(exp)], tmp_path / "driver.log")
    assert final.finish(timeout=600) == 0, final.text()[-3000:]
    verdict = check(exp, spec, [at_stop], [ray_dir, _ray_dir(exp)])
    assert verdict.problems == [] and not verdict.lost and not verdict.duplicated, verdict
