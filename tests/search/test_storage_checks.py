"""Bad experiment storage is bad input: one line naming the path, exit 2, nothing changed.

Read-only, full (a real small tmpfs), half-deleted (tune/ or optuna/ gone) and written by a
newer robprune; checked before Ray starts, so these tests need no Ray. Also: a resume refuses
to run beside a live driver.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli import main as cli_main
from search.run.ownership import record_driver
from search.state.experiment import FORMAT_FILE, Experiment
from tests.support.requirements import require

SPEC = {
    "name": "s",
    "data": {"dataset": "digits", "train_limit": 200},
    "model": {"arch": "small_cnn"},
    "prune": {"sparsity": {"choice": [0.3, 0.5]}, "criterion": "l1"},
    "finetune": {"method": "ce", "epochs": 1},
}


def _killed_experiment(parent: Path) -> Path:
    """An optimize experiment as a killed search leaves it: a started run, Tune, the journal."""
    exp = Experiment.create(str(parent), "s", mode="optimize", spec_yaml=yaml.safe_dump(SPEC))
    segment = exp.add_segment(4)
    exp.set_segment_status(segment.name, "running")
    root = Path(exp.location)
    (root / "tune" / segment.name).mkdir(parents=True)
    (root / "tune" / segment.name / "experiment_state-x.json").write_text("{}")
    (root / "optuna").mkdir()
    (root / "optuna" / "journal.log").write_text("")
    return root


@pytest.fixture
def experiment(tmp_path) -> Path:
    return _killed_experiment(tmp_path)


def _fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mtime_ns,
            )
        else:
            out[str(path.relative_to(root))] = ("dir", 0)
    return out


def _resume_fails(root: Path, capsys, fragment: str, named: Path) -> None:
    before = _fingerprint(root)
    assert cli_main(["resume", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert fragment in err[0] and str(named) in err[0], err[0]
    assert _fingerprint(root) == before  # nothing changed


def test_missing_tune_dir(experiment, capsys):
    shutil.rmtree(experiment / "tune")
    _resume_fails(experiment, capsys, "missing", experiment / "tune")


def test_missing_tune_run(experiment, capsys):
    shutil.rmtree(experiment / "tune" / "run-000")
    _resume_fails(experiment, capsys, "missing", experiment / "tune" / "run-000")


def test_missing_optuna_dir(experiment, capsys):
    shutil.rmtree(experiment / "optuna")
    _resume_fails(experiment, capsys, "missing", experiment / "optuna")


def test_newer_robprune(experiment, capsys):
    (experiment / FORMAT_FILE).write_text("99\n")
    _resume_fails(experiment, capsys, "newer robprune", experiment / FORMAT_FILE)
    assert cli_main(["export", str(experiment)]) == 2  # every command refuses it
    assert "newer robprune" in capsys.readouterr().err


def test_read_only(experiment, capsys):
    modes = {}
    for path in [experiment, *experiment.rglob("*")]:
        modes[path] = path.stat().st_mode
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        _resume_fails(experiment, capsys, "read-only", experiment)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_full_disk(tmp_path, capsys):
    """A real full file system: a 256 KiB tmpfs has no room for the 1 MiB probe."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True
    )
    require(  # needs root: `.ci/run` runs as root, so CI always runs this test
        mounted.returncode == 0,
        f"a 256 KiB tmpfs cannot be mounted (needs root): {mounted.stderr.decode().strip()}",
    )
    try:
        root = _killed_experiment(small)
        _resume_fails(root, capsys, "the disk is full", root)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_new_experiment_records_its_format(experiment):
    assert (experiment / FORMAT_FILE).read_text().strip() == "1"


def test_resume_refuses_to_run_beside_a_live_driver(experiment, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp = Experiment.open(str(experiment))
        record_driver(exp, ray_dir=None)
        record = json.loads((experiment / "driver.json").read_text())
        record["pid"] = sleeper.pid  # as if that process were the driver
        from search.run.ownership import _start_time

        record["pid_start"] = _start_time(sleeper.pid)
        (experiment / "driver.json").write_text(json.dumps(record))
        _resume_fails(experiment, capsys, f"being run by PID {sleeper.pid}", experiment)
    finally:
        sleeper.kill()
        sleeper.wait()


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "search": {"num_samples": 2}}))
    return path


def _search_fails(capsys, args: list[str], fragment: str, named: Path) -> None:
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and str(named) in err[0], err


def test_search_into_a_read_only_folder_creates_nothing(tmp_path, capsys):
    """One write rule for every command: write bits cleared are read-only, even for root."""
    storage = tmp_path / "ro"
    storage.mkdir()
    storage.chmod(0o555)
    try:
        args = ["search", str(_spec_file(tmp_path)), "--storage", str(storage), "--name", "x"]
        _search_fails(capsys, args, "read-only", storage)
        assert not list(storage.iterdir())
    finally:
        storage.chmod(0o755)


def test_search_onto_a_disk_without_room_creates_nothing(tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True
    )
    require(mounted.returncode == 0, f"no tmpfs (needs root): {mounted.stderr!r}")
    try:
        args = ["search", str(_spec_file(tmp_path)), "--storage", str(small), "--name", "x"]
        _search_fails(capsys, args, "not enough room", small)
        assert not list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_export_of_a_read_only_experiment_writes_nothing(experiment, capsys):
    experiment.chmod(0o555)
    try:
        before = _fingerprint(experiment)
        assert cli_main(["export", str(experiment)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "read-only" in err[0] and str(experiment) in err[0], err
        assert _fingerprint(experiment) == before
    finally:
        experiment.chmod(0o755)


def test_a_local_ray_keeps_its_sessions_under_ray_tmpdir(tmp_path, monkeypatch):
    from search.run.ownership import ray_temp_dir

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert ray_temp_dir().startswith(f"{tmp_path}/robprune-ray-")
    monkeypatch.delenv("RAY_TMPDIR")
    assert ray_temp_dir().startswith("/tmp/robprune-ray-")


def test_finalize_follows_the_driver_rule_too(experiment, capsys):
    """`finalize` starts Ray like `search`: it refuses to run beside a live driver."""
    from search.run.ownership import _start_time

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record_driver(Experiment.open(str(experiment)), ray_dir=None)
        record = json.loads((experiment / "driver.json").read_text())
        record.update(pid=sleeper.pid, pid_start=_start_time(sleeper.pid))
        (experiment / "driver.json").write_text(json.dumps(record))
        assert cli_main(["finalize", str(experiment)]) == 2
        err = capsys.readouterr().err
        assert f"being run by PID {sleeper.pid}" in err, err
    finally:
        sleeper.kill()
        sleeper.wait()
