"""robprune submit / jobs / status / logs / stop / resume --submit against a real Ray head.

The head and the moto S3 server are tests/cluster/conftest.py's (one for the session). The
jobs are real robprune searches on digits, run through the Jobs API with the working directory
uploaded. The tests run in file order, after tests/cluster/test_cluster_errors.py: the
credentials test greps everything they produced for the planted secrets; the last one checks
the multi-node rule for local paths on the head's real node count and on the count a larger
cluster reports (no second node joins a loopback head: see its docstring).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.support.cluster import (
    AWS_SECRET,
    BUCKET,
    LONG_EPOCHS,
    RAY_TOKEN,
    check_complete,
    job_state,
    local_trials,
    write_spec,
)
from tests.support.ray_head import processes_of
from tests.support.requirements import MOTO_SERVER as MOTO
from tests.support.requirements import require
from tests.support.stored_study import study_from_bucket

# a real `ray start` head and jobs: minutes, so outside the fast tier
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]


# ------------------------------------------------------------------------------ jobs


def test_submit_follow_report(cluster, tmp_path):
    storage = cluster.root / "exps"
    spec = write_spec(tmp_path / "grid.yaml", "grid-ok", epochs=2, storage=str(storage))
    job, location = cluster.submit(spec)
    assert location.startswith(str(storage / "grid-ok-"))  # the name gets a time suffix
    listed = cluster.robprune("jobs", "--address", cluster.address)
    assert job in listed.stdout and "search" in listed.stdout
    done = cluster.wait(job, lambda t: job_state(t) == "SUCCEEDED")
    assert "trials:     2 TERMINATED, 0 ERROR, 0 RUNNING, 0 PENDING of 2 planned" in done, done
    assert "state:      finished" in done and "best:       trial " in done
    assert "val_robust_acc = " in done and "(validation under " in done
    exp = Path(location)
    status = json.loads((exp / "status.json").read_text())
    assert status["state"] == "finished" and status["trials"]["TERMINATED"] == 2
    # the experiment itself, as from another terminal: the same summary, no job needed
    direct = cluster.robprune("status", location)
    assert direct.returncode == 0, direct.stderr
    same = [ln for ln in direct.stdout.splitlines() if not ln.startswith("state:")]  # "ago"
    missing = [ln for ln in same if ln not in done.splitlines()]
    assert same and not missing, (missing, done)  # one code path: the job's status shows it
    listed = cluster.robprune("list", str(storage), "--json")
    views = {v["location"]: v for v in json.loads(listed.stdout)}
    assert views[location]["state"] == "finished", listed.stdout
    check_complete(local_trials(exp), 2)
    logs = cluster.robprune("logs", job, "--address", cluster.address)
    assert logs.returncode == 0 and "completed" in logs.stdout and "results:" in logs.stdout
    followed = cluster.robprune("logs", job, "--follow", "--address", cluster.address)
    assert followed.returncode == 0 and "results:" in followed.stdout  # ends with the job
    # as Ray users expect: the address from the environment when --address is left out
    env = {**cluster.env, "RAY_API_SERVER_ADDRESS": cluster.address}
    listed = cluster.robprune("jobs", env=env)
    assert listed.returncode == 0 and job in listed.stdout
    report = cluster.robprune("report", str(exp / "results"), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "index.html").exists()


def test_stop_then_resume_submit(cluster, tmp_path):
    storage = cluster.root / "exps"
    spec = write_spec(
        tmp_path / "long.yaml", "grid-stop", epochs=LONG_EPOCHS, storage=str(storage)
    )
    job, location = cluster.submit(spec, "--name", "grid-stop")
    assert location == str(storage / "grid-stop")
    cluster.wait(job, lambda t: "trials:" in t and " 0 RUNNING" not in t)
    run = cluster.robprune("stop", job, "--address", cluster.address)
    assert run.returncode == 0 and "resume" in run.stdout, run.stderr
    stopped = cluster.wait(job, lambda t: job_state(t) == "STOPPED", timeout_s=120)
    assert "robprune resume " in stopped and "--submit" in stopped
    exp = storage / "grid-stop"
    run = cluster.robprune(
        "resume", str(exp), "--submit", "--address", cluster.address, "--python", sys.executable
    )
    assert run.returncode == 0, run.stdout + run.stderr
    job2 = run.stdout.split()[1]
    cluster.jobs.append(job2)
    cluster.wait(job2, lambda t: job_state(t) == "SUCCEEDED")
    check_complete(local_trials(exp), 2)
    # resubmitting the spec is refused (one line); with --resume, what a recreated KubeRay
    # RayJob runs (cluster/kuberay.yaml), it continues the experiment: here, nothing is left
    again = cluster.robprune(
        "submit",
        str(spec),
        "--address",
        cluster.address,
        "--python",
        sys.executable,
        "--name",
        "grid-stop",
    )
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "already exists" in again.stderr and "--resume" in again.stderr
    job3, location3 = cluster.submit(spec, "--name", "grid-stop", "--resume")
    assert location3 == location
    cluster.wait(job3, lambda t: job_state(t) == "SUCCEEDED")
    logs = cluster.robprune("logs", job3, "--address", cluster.address)
    assert "nothing to resume" in logs.stdout, logs.stdout[-2000:]
    check_complete(local_trials(exp), 2)


def test_s3_kill_mid_trial_then_resume(cluster, tmp_path):
    require(MOTO, "moto_server is not installed (dev extra moto[server])")
    fs = cluster.s3()
    fs.create_dir(BUCKET)
    spec = write_spec(
        tmp_path / "s3.yaml",
        "opt-s3",
        epochs=LONG_EPOCHS,
        storage=f"s3://{BUCKET}/exps",
        mode="optimize",
    )
    job, location = cluster.submit(spec, "--name", "opt-s3")
    assert location == f"s3://{BUCKET}/exps/opt-s3"
    cluster.wait(job, lambda t: "trials:" in t and " 0 RUNNING" not in t)
    drivers = [
        pid
        for pid in processes_of(cluster.head.temp_dir)
        if b"cluster.job_entry" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert drivers, "the job's driver process was not found"
    for pid in drivers:
        os.kill(pid, 9)
    cluster.wait(job, lambda t: job_state(t) in ("FAILED", "STOPPED"), timeout_s=120)
    shutil.rmtree(cluster.root / "work", ignore_errors=True)  # the head's disk is gone too
    exp = f"s3://{BUCKET}/exps/opt-s3"
    run = cluster.robprune(
        "resume", exp, "--submit", "--address", cluster.address, "--python", sys.executable
    )
    assert run.returncode == 0, run.stdout + run.stderr
    job2 = run.stdout.split()[1]
    cluster.jobs.append(job2)
    cluster.wait(job2, lambda t: job_state(t) == "SUCCEEDED")
    root = f"{BUCKET}/exps/opt-s3"
    with fs.open_input_file(f"{root}/results/trials.parquet") as handle:
        trials = pq.read_table(handle).to_pylist()
    check_complete(trials, 2, grid=False)
    study = study_from_bucket(fs, root, tmp_path)  # the working copy was deleted
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
    done = sorted(
        t.user_attrs["tune_trial_id"] for t in study.trials if t.state.name == "COMPLETE"
    )
    assert done == sorted(t["trial_id"] for t in trials)
    names = {i.path for i in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True))}
    assert f"{root}/status.json" in names and f"{root}/experiment.json" in names
    assert any(n.startswith(f"{root}/dense/") and n.endswith("meta.json") for n in names)


def test_no_planted_credentials_anywhere(cluster):
    """Logs, status output, experiment directories, results: neither secret appears."""
    require(MOTO, "moto_server is not installed: the bucket could not be searched")
    assert cluster.jobs, "run with the job tests"
    raw_logs = cluster.ray_client(
        f"print('\\n'.join(client.get_job_logs(j) for j in {cluster.jobs!r}))"
    )  # as Ray stores them, not as `robprune logs` (which scrubs) prints them
    assert "completed" in raw_logs
    texts = [raw_logs, *cluster.outputs]
    blobs = [p.read_bytes() for p in (cluster.root / "exps").rglob("*") if p.is_file()]
    blobs += [p.read_bytes() for p in (cluster.root / "work").rglob("*") if p.is_file()]
    fs = cluster.s3()
    for info in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as handle:
                blobs.append(handle.read())
    assert len(blobs) > 20
    for secret in (RAY_TOKEN, AWS_SECRET):
        assert not [t for t in texts if secret in t]
        assert not [b for b in blobs if secret.encode() in b]


def test_local_paths_and_the_clusters_size(cluster, tmp_path):
    """The real head counts its nodes; local paths are refused on more than one, by key.

    No second node is added: `ray start --address 127.0.0.1:PORT` refuses to start a worker
    node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (what keeps Ray on loopback), and with it
    set to 1 replaces the loopback address by the machine's external one, where the head does
    not listen (Ray 2.60). What this checks: the head reports 1 node through Ray's state API
    (`node_count`); the planned job names its local paths by key; `local_path_problem` accepts
    them on 1 node, refuses them on 3 (the count is the decision's input) naming the key and
    the count, accepts them with `--shared-paths`; with an s3:// storage only data.data_dir is
    left. A real multi-node cluster (head + 2 workers, `ray.cluster_utils`) runs in
    tests/system/test_search_node_loss.py.
    """
    from argparse import Namespace

    from cluster.submit import local_path_problem, plan_search

    spec = write_spec(tmp_path / "s.yaml", "paths", epochs=1, storage=str(tmp_path / "exps"))
    args = Namespace(spec=str(spec), overrides=[f"data.data_dir={tmp_path}"], name=None)
    plan = plan_search(Namespace(**vars(args), storage=None))
    assert plan.local_paths == {"storage": str(tmp_path / "exps"), "data.data_dir": str(tmp_path)}
    counted = cluster.ray_client(
        "from cluster.client import node_count; print(node_count(client))"
    )
    assert counted.strip() == "1"
    assert local_path_problem(plan.local_paths, 1, shared=False) is None  # job 1 ran that way
    problem = local_path_problem(plan.local_paths, 3, shared=False)
    assert (
        problem.startswith(f"storage: {tmp_path / 'exps'} is a local path")
        and "3 nodes" in problem
    )
    assert local_path_problem(plan.local_paths, 3, shared=True) is None
    remote = plan_search(Namespace(**vars(args), storage=f"s3://{BUCKET}/x"))
    assert local_path_problem(remote.local_paths, 3, shared=False).startswith("data.data_dir: ")
