"""A disk that fills, or a folder that stops taking writes, mid-search is a storage fault, not
a result (a real tmpfs, real Ray). The folder is made immutable (`chattr -R +i`): writes then
fail with EPERM even for root, whom permission bits do not stop.

The search stops with one line naming the experiment and the cause and exit code 75; no
Optuna trial is FAILed, no trial records an error of its own and none used a retry. Then,
with space back and Tune's snapshot deleted outright, `resume` rebuilds the run from
robprune's own records and finishes every planned trial exactly once, continuing the
unfinished ones from their checkpoints. Needs root to mount the tmpfs (CI runs as root).
"""

from __future__ import annotations

import io
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import ray

from search.run.runner import resume_experiment, run_search
from search.run.storage_fault import EXIT_STORAGE
from search.run.study import open_storage
from search.spec.parse import parse_spec
from search.state.checkpoints import MANIFEST, is_whole
from search.state.storage import LOCAL
from tests.support.requirements import require
from tests.support.trials import fast_trial


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    require(done.returncode == 0, f"a tmpfs cannot be mounted (needs root): {done.stderr!r}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fault_after_first_checkpoint(
    root: Path, kind: str, filler: Path, stop: threading.Event
) -> None:
    """Fill the disk, or freeze the experiment, the moment a trial's first epoch checkpoint
    is whole on it."""
    while not stop.is_set():
        saved = list(root.glob("*/tune/run-000/trial_*/checkpoint_*"))
        if any(is_whole(LOCAL, str(path)) for path in saved if (path / MANIFEST).exists()):
            if kind == "read-only":
                exp = saved[0].parents[3]
                subprocess.run(["chattr", "-R", "+i", str(exp)], check=True)
                return
            with open(filler, "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * (1 << 20))
                        handle.flush()
                except OSError:
                    pass
            return
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("kind", "cause"),
    [("full", "is full"), ("read-only", "refuses writes (operation not permitted)")],
)
def test_a_storage_fault_mid_search_stops_it_and_resume_finishes(small_disk, capsys, kind, cause):
    raw = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 1},
        prune={"criterion": {"choice": ["l1", "l2"]}},
        finetune={"method": "ce", "epochs": 4},
        search={
            "mode": "optimize",
            "num_samples": 2,
            "max_concurrent": 2,
            "dedupe": False,
            "scheduler": "none",
        },
    )
    raw.pop("cache_dir")
    spec = parse_spec(raw, name="full", storage=str(small_disk))
    filler, stop = small_disk / "filler", threading.Event()
    fault = (small_disk, kind, filler, stop)
    watcher = threading.Thread(target=_fault_after_first_checkpoint, args=fault)
    watcher.start()
    try:
        outcome = run_search(spec, stream=io.StringIO())
    finally:
        stop.set()
        watcher.join()
    location = outcome.experiment.location
    err = capsys.readouterr().err.strip().splitlines()
    assert outcome.exit_code == EXIT_STORAGE, err
    (line,) = [e for e in err if e.startswith("robprune: error:")]
    assert f"the storage under {location} {cause}" in line
    assert f"robprune resume {location}" in line
    exp = outcome.experiment
    study = optuna.load_study(study_name=exp.study_name, storage=open_storage(exp.journal_path))
    assert not [t.number for t in study.trials if t.state.name == "FAIL"]  # not a result
    assert not list(Path(location).glob("tune/*/trial_*/robprune-trial-error.txt"))

    filler.unlink(missing_ok=True)  # the fault is gone; Tune's snapshot too: the records must do
    subprocess.run(["chattr", "-R", "-i", location], check=True)
    for state in Path(location, "tune", "run-000").glob("*state*"):
        state.unlink()
    said = io.StringIO()
    again = resume_experiment(location, stream=said)
    assert again.exit_code == 0, said.getvalue()
    rows = pq.read_table(f"{location}/results/trials.parquet").to_pylist()
    assert len(rows) == 2 == len({r["trial_id"] for r in rows})
    assert all(r["status"] == "TERMINATED" for r in rows)
    study = optuna.load_study(study_name=exp.study_name, storage=open_storage(exp.journal_path))
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE"]
    assert max(r["restores"] for r in rows) >= 1, said.getvalue()  # continued, not redone
