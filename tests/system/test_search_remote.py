"""A search whose storage is an s3:// URI (a local moto S3 server on loopback).

Needs a `moto_server` executable (PATH or $MOTO_SERVER; `pip install "moto[server]>=5.2.5"`,
part of the dev extras; older ones fail pyarrow's uploads). Outside CI a missing or unusable
server skips the test; under CI it fails (`requirements.require`), so the remote path is never
silently untested. The experiment, Tune's runs, the shared dense models, the Optuna journal and
the Parquet results all live in the bucket; after the local working copy is deleted, `resume
--extend` trains nothing and its trial fetches the dense model from the bucket itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.moto_server import moto_server
from tests.support.paths import ROOT
from tests.support.requirements import MOTO_SERVER as MOTO
from tests.support.requirements import require
from tests.support.stored_study import study_from_bucket
from tests.support.trials import fast_trial


@pytest.fixture
def s3(tmp_path, monkeypatch):
    require(MOTO, "moto_server is not installed (pip install 'moto[server]>=5.2.5')")
    with moto_server() as port:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "ROBPRUNE_WORK_DIR": str(tmp_path / "work"),
        }
        query = (
            f"endpoint_override=http://127.0.0.1:{port}&scheme=http&region=us-east-1"
            "&allow_bucket_creation=true"
        )
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(key, env[key])
        try:
            fs = pafs.S3FileSystem(
                access_key="test",
                secret_key="test",
                region="us-east-1",
                scheme="http",
                endpoint_override=f"http://127.0.0.1:{port}",
                allow_bucket_creation=True,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
            )
            fs.create_dir("robprune")
            with fs.open_output_stream("robprune/probe.txt") as handle:
                handle.write(b"ok")
        except OSError as exc:
            require(False, f"{MOTO} cannot serve pyarrow's uploads (moto >= 5.2.5 can): {exc}")
        yield f"s3://robprune/exps?{query}", fs, env


def test_search_and_extend_on_s3(tmp_path, s3):
    storage, fs, env = s3
    spec = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 2},
        prune={"criterion": {"choice": ["l1", "random"]}},
        # a continuous leaf: the space is never exhausted, so --extend trains (search.dedupe)
        finetune={"method": "ce", "epochs": 2, "lr": {"loguniform": [0.005, 0.05]}},
    )
    spec.pop("cache_dir")
    spec.update(
        name="remote",
        search={"mode": "optimize", "num_samples": 2, "scheduler": "none", "max_concurrent": 2},
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "cli"]
    run = subprocess.run(
        [*cmd, "search", str(path), "--storage", storage, "--name", "remote"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    exp = storage.replace("/exps?", "/exps/remote?")
    work = tmp_path / "work"
    assert list(work.glob("remote-*/dense/dense/*/model.pt")), "the dense stage trained locally"
    shutil.rmtree(work)  # as on another machine: only the bucket has the dense model
    more = subprocess.run(
        [*cmd, "resume", exp, "--extend", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "already trained" in more.stdout and "ready after" not in more.stdout, more.stdout
    # only a trial's fetch from storage writes `.synced` beside the models it downloaded
    (cache,) = work.glob("remote-*/dense")
    assert (cache / ".synced").exists() and list(cache.glob("dense/*/model.pt"))

    root = "robprune/exps/remote"
    with fs.open_input_file(f"{root}/results/trials.parquet") as handle:
        trials = pq.read_table(handle).to_pylist()
    assert len(trials) == 3 and all(t["status"] == "TERMINATED" for t in trials)
    names = {
        i.path.removeprefix(root + "/")
        for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
    }
    assert "optuna/journal.log" in names and "spec.yaml" in names
    assert any(n.startswith("dense/dense/") and n.endswith("/meta.json") for n in names)
    assert any(n.startswith("tune/run-001/") for n in names)
    assert not (tmp_path / "exps").exists()


def _s3_names(fs: pafs.FileSystem, root: str) -> set[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError:
        return set()
    return {i.path.removeprefix(root + "/") for i in infos}


def _s3_trials_running(fs: pafs.FileSystem, root: str, seen: set[str]) -> bool:
    """A checkpoint newer than `seen` of a trial that has not ended is in the bucket."""
    names = _s3_names(fs, f"{root}/tune")
    ended = {n.rsplit("/", 1)[0] for n in names if n.endswith("/robprune-end.json")}
    fresh = {
        n.split("/checkpoint_")[0] + "/checkpoint_" + n.split("/checkpoint_")[1].split("/")[0]
        for n in names
        if "/checkpoint_" in n
    } - seen
    return any(c.split("/checkpoint_")[0] not in ended for c in fresh)


def _checkpoints_by_trial(names: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 3 and parts[2].startswith("checkpoint_"):
            out.setdefault(parts[1], set()).add(parts[2])
    return out


def test_head_loss_resumes_from_the_bucket_alone(tmp_path, s3, monkeypatch):
    """The driver (with its local working copy) dies while trials run, twice, at seeded
    moments; each resume starts from an empty working copy, as on a new head, and the last
    one also without Tune's snapshot in the bucket (deleted outright: the run is rebuilt
    from robprune's records). Every trial ends exactly once, none finished is trained again,
    the study has no RUNNING trial and TPE saw every finished trial (one COMPLETE Optuna
    trial per Tune trial)."""
    import random

    sys.path.insert(0, str(ROOT / "tools"))
    from soak_resume import Driver

    storage, fs, env = s3
    rng = random.Random(18)
    spec = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 1},
        prune={"criterion": {"choice": ["l1", "random"]}, "sparsity": {"choice": [0.3, 0.5]}},
        # long enough that the first resume cannot finish before the second kill
        finetune={"method": "ce", "epochs": 10},
    )
    spec.pop("cache_dir")
    spec.update(
        name="headloss",
        search={"mode": "optimize", "num_samples": 4, "scheduler": "none", "max_concurrent": 2},
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    exp = storage.replace("/exps?", "/exps/headloss?")
    root, log = "robprune/exps/headloss", tmp_path / "drivers.log"
    monkeypatch.setenv("ROBPRUNE_WORK_DIR", env["ROBPRUNE_WORK_DIR"])
    args = ["search", str(path), "--storage", storage, "--name", "headloss"]
    seen: set[str] = set()
    ended: dict[str, set[str]] = {}  # trial -> its checkpoints, for trials ended at a kill
    for kill in range(2):

        def ready(seen: set[str] = seen, kill: int = kill) -> bool:
            """Trials run (a fresh checkpoint); before the 2nd kill, one has ended too."""
            names = _s3_names(fs, f"{root}/tune") if kill else set()
            ended_one = not kill or any(n.endswith("/robprune-end.json") for n in names)
            return ended_one and _s3_trials_running(fs, root, seen)

        driver = Driver.start(args, log)
        assert driver.wait_for(ready, timeout=400), driver.text()[-3000:]
        driver.wait_for(lambda: False, timeout=rng.uniform(0.0, 4.0))  # a seeded moment
        assert driver.running(), driver.text()[-3000:]
        driver.kill()
        names = _s3_names(fs, f"{root}/tune")
        seen |= {n.rsplit("/", 1)[0] for n in names if "/checkpoint_" in n}
        by_trial = _checkpoints_by_trial(names)
        for name in names:
            if name.endswith("/robprune-end.json"):
                ended.setdefault(name.split("/")[1], by_trial.get(name.split("/")[1], set()))
        shutil.rmtree(tmp_path / "work", ignore_errors=True)  # the head's disk is gone
        args = ["resume", exp]
    snapshot = [
        n
        for n in _s3_names(fs, f"{root}/tune/run-000")
        if "/" not in n and n.startswith(("experiment_state-", "search_gen_state-", "searcher-"))
    ]
    assert snapshot, "Tune saved no snapshot in the bucket before the kills"
    for name in snapshot:
        fs.delete_file(f"{root}/tune/run-000/{name}")
    final = Driver.start(args, log)
    assert final.finish(timeout=600) == 0, final.text()[-4000:]
    # rebuilt from the records, unless the second kill came after the run had finished
    said = final.text()
    assert "rebuilt from robprune's records" in said or "nothing to resume" in said, said[-3000:]
    assert "prims::" not in log.read_text()

    with fs.open_input_file(f"{root}/results/trials.parquet") as handle:
        trials = pq.read_table(handle).to_pylist()
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == 4 == len(set(ids)), ids
    assert all(t["status"] == "TERMINATED" for t in trials), trials
    study = study_from_bucket(fs, root, tmp_path)
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
    complete = [t.user_attrs["tune_trial_id"] for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(complete) == sorted(ids)  # every finished trial conditions the sampler, once
    assert ended, "no trial had ended at a kill: the kills came too early to check this"
    after = _checkpoints_by_trial(_s3_names(fs, f"{root}/tune"))
    for trial, checkpoints in ended.items():  # ended before a kill: never trained again
        assert after.get(trial, set()) <= checkpoints, (trial, checkpoints, after.get(trial))
