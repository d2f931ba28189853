"""`robprune status` and `list` on a search that runs, then on the same search killed.

Read from this process while the driver runs in another (as from a second terminal); the
finished case and the Optuna study are in tests/system/test_search_ray.py, the cluster case (a
real `ray start` head, status by job id and by experiment) in tests/cluster/test_cluster_jobs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from cli import main as cli_main
from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_resume import ENV, Driver, soak_spec  # noqa: E402

#: What robprune sets itself when the user has not (tests/conftest.py sets them for the rest).
RAY_ENV = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def _start_bare(args: list[str], tmp_path: Path) -> Driver:
    """`robprune ARGS` as a user starts it: none of Ray's variables set, a home of its own
    (Ray keeps its token under ~/.ray)."""
    env = {k: v for k, v in {**os.environ, **ENV}.items() if k not in RAY_ENV}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    log = tmp_path / "log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
    return Driver(proc=proc, log=log)


def _status(capsys, exp: Path) -> dict:
    assert cli_main(["status", str(exp), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_of_a_running_then_killed_search(tmp_path, capsys):
    from search.run.ownership import reap_dead_driver
    from search.state.experiment import Experiment

    spec = soak_spec(str(tmp_path / "exps"), "optimize", epochs=30)  # 4 trials, long enough
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    exp = tmp_path / "exps" / "s"
    driver = _start_bare(["search", str(tmp_path / "spec.yaml"), "--name", "s"], tmp_path)
    try:
        views: list[dict] = []

        def running() -> bool:
            if not (exp / "status.json").exists():
                return False
            views.append(_status(capsys, exp))
            return views[-1]["trials"]["RUNNING"] > 0

        assert driver.wait_for(running, timeout=300, poll=0.5), driver.text()[-3000:]
        view = views[-1]
        assert view["state"] == "running" and view["planned"] == 4
        assert f"PID {driver.proc.pid}" in view["state_detail"]
        assert view["results"] is None  # written when the run ends
        assert view["optuna"]["study"] == "s"  # the study, named after the experiment
        assert cli_main(["status", str(exp)]) == 0
        text = capsys.readouterr().out
        assert "state:      running" in text and "RUNNING" in text and "continue:" not in text
        assert cli_main(["list", str(tmp_path / "exps")]) == 0
        assert "  running  " in capsys.readouterr().out
        assert "Number of trials" not in driver.text()  # Tune's box (an unbounded count)
        assert "Token authentication" not in driver.text()  # robprune said RAY_AUTH_MODE
        assert (tmp_path / "home" / ".ray" / "auth_token").is_file()  # token mode, as said
        driver.kill()
        killed = _status(capsys, exp)
        assert killed["state"] == "killed" and "is gone" in killed["state_detail"]
        assert killed["trials"]["RUNNING"] == 0 and killed["trials"]["PENDING"] >= 1
        assert cli_main(["status", str(exp)]) == 0
        assert f"continue:   robprune resume {exp}" in capsys.readouterr().out
    finally:
        driver.kill()
        reap_dead_driver(Experiment.open(str(exp)))  # the dead driver's Ray, by PID
