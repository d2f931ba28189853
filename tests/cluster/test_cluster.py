"""robprune submit / jobs / status / logs / stop / resume --submit against a real Ray head.

One head for the whole module (`ray start --head` on 127.0.0.1, own temp dir, free ports,
token authentication on with a planted token), one moto S3 server on loopback, both ended by
PID at the end. The jobs are real robprune searches on digits, run through the Jobs API with
the working directory uploaded. The tests run in file order: the credentials test greps
everything the others produced for the planted secrets; the last one checks the multi-node
rule for local paths on the head's real node count and on the count a larger cluster reports
(no second node joins a loopback head: see its docstring).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.ray_head import LOOPBACK_ENV, RayHead, free_port, processes_of
from tests.support.requirements import MOTO_SERVER as MOTO
from tests.support.requirements import require
from tests.support.trials import fast_trial

RAY_TOKEN = "plantedRayToken" + secrets.token_hex(12)
AWS_SECRET = "plantedAwsSecret" + secrets.token_hex(12)
BUCKET = "robprune"
#: Fine-tuning epochs of the jobs that are stopped or killed: long enough to be mid-trial
#: when that happens, short enough to finish after the resume.
# long enough (tens of seconds even on a fast machine) to stop or kill a job mid-trial
LONG_EPOCHS = 80
# a real `ray start` head and jobs: minutes, so outside the fast tier
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]


class Cluster:
    """The head, the S3 server, the environment for robprune commands, and what they printed."""

    def __init__(self, root: Path):
        self.root = root
        self.outputs: list[str] = []
        self.jobs: list[str] = []
        self.s3_port = free_port()
        self.moto: subprocess.Popen | None = None
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
        base.pop("PYTHONPATH", None)  # jobs must get the code from the uploaded working dir
        self.env = {
            **base,
            **LOOPBACK_ENV,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": RAY_TOKEN,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_port}",
            "ROBPRUNE_WORK_DIR": str(root / "work"),
            "OMP_NUM_THREADS": "1",
            "TUNE_GLOBAL_CHECKPOINT_S": "1",
        }
        self.head = RayHead(root / "ray", self.env, num_cpus=2)

    @property
    def address(self) -> str:
        return self.head.address

    def start(self) -> None:
        if MOTO:
            self.moto = subprocess.Popen(
                [MOTO, "-H", "127.0.0.1", "-p", str(self.s3_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.head.start()

    def stop(self) -> None:
        self.head.stop()
        if self.moto is not None:
            self.moto.kill()
            self.moto.wait()

    def robprune(self, *args: str, env: dict | None = None, timeout: int = 180):
        """A robprune command as a user runs it (this checkout on PYTHONPATH)."""
        run = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**(env or self.env), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.outputs.append(run.stdout + run.stderr)
        return run

    def submit(self, spec_path: Path, *extra: str) -> tuple[str, str]:
        """(job id, experiment location) as `robprune submit` prints them."""
        run = self.robprune(
            "submit", str(spec_path), "--address", self.address, "--python", sys.executable, *extra
        )
        assert run.returncode == 0, run.stdout + run.stderr
        job = run.stdout.split()[1]
        assert job.startswith("robprune-") and f"robprune status {job}" in run.stdout
        self.jobs.append(job)
        experiment = run.stdout.split("experiment: ", 1)[1].split()[0]
        return job, experiment

    def ray_client(self, code: str) -> str:
        """Python with `client`, Ray's own JobSubmissionClient for the head (with the token)."""
        prelude = (
            "from ray.job_submission import JobSubmissionClient\n"
            f"client = JobSubmissionClient({self.address!r})\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", prelude + code],
            env={**self.env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    def status(self, job: str) -> str:
        run = self.robprune("status", job, "--address", self.address)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def wait(self, job: str, until, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.status(job)
            if until(text):
                return text
            if any(f"  {s}  " in text.splitlines()[0] for s in ("FAILED", "SUCCEEDED")):
                break
            time.sleep(1)
        logs = self.robprune("logs", job, "--address", self.address).stdout
        raise AssertionError(f"{job} never reached the state wanted:\n{text}\n{logs[-4000:]}")

    def s3(self) -> pafs.FileSystem:
        return pafs.S3FileSystem(
            access_key="test",
            secret_key=AWS_SECRET,
            region="us-east-1",
            scheme="http",
            endpoint_override=f"127.0.0.1:{self.s3_port}",
            allow_bucket_creation=True,
        )


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="rp-cl-", dir="/tmp"))  # short: Ray's socket paths
    c = Cluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _state(text: str) -> str:
    return text.splitlines()[0].split()[2]


def _spec(path: Path, name: str, *, epochs: int, storage: str, mode: str = "grid") -> Path:
    spec = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 2},
        prune={"criterion": {"choice": ["l1", "random"]}},
        finetune={"method": "ce", "epochs": epochs},
        eval={"test_limit": 100},
    )
    spec.pop("cache_dir")
    spec.update(
        name=name,
        storage=storage,
        search={"mode": mode, "scheduler": "none", "max_concurrent": 2},
        resources={"cpu": 1, "gpu": 0},
    )
    if mode != "grid":
        spec["search"]["num_samples"] = 2
    path.write_text(yaml.safe_dump(spec))
    return path


def _local_trials(exp: Path) -> list[dict]:
    return pq.read_table(exp / "results" / "trials.parquet").to_pylist()


def _check_complete(trials: list[dict], n: int, *, grid: bool = True) -> None:
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == n and len(set(ids)) == n, ids
    assert all(t["status"] == "TERMINATED" for t in trials), [t["status"] for t in trials]
    if grid:
        assert {t["criterion"] for t in trials} == {"l1", "random"}


# ------------------------------------------------------------------------------ errors


def test_unreachable_head_and_wrong_port(cluster):
    nothing = f"http://127.0.0.1:{free_port()}"
    run = cluster.robprune("jobs", "--address", nothing)
    assert run.returncode == 2 and "cannot reach the Ray head" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    gcs = f"127.0.0.1:{cluster.head.gcs_port}"  # the port `ray start --port` was given
    run = cluster.robprune("status", "x", "--address", gcs)
    assert run.returncode == 2 and "not a Ray dashboard" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_token_required_and_wrong_token(cluster, tmp_path):
    bare = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    bare["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    for mode, words in (("token", "no token is set"), ("disabled", "requires an authentication")):
        env = {**bare, "RAY_AUTH_MODE": mode}
        run = cluster.robprune("jobs", "--address", cluster.address, env=env)
        assert run.returncode == 2 and words in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    wrong = {**bare, "RAY_AUTH_TOKEN": "not-the-token-" + secrets.token_hex(8)}
    run = cluster.robprune("jobs", "--address", cluster.address, env=wrong)
    assert run.returncode == 2 and "rejected the authentication token" in run.stderr, run.stderr
    assert wrong["RAY_AUTH_TOKEN"] not in run.stderr


def test_unknown_job_and_foreign_job(cluster):
    run = cluster.robprune("status", "raysubmit_doesnotexist", "--address", cluster.address)
    assert run.returncode == 2 and "no job 'raysubmit_doesnotexist'" in run.stderr, run.stderr
    foreign = cluster.ray_client(
        "import time\n"
        "for _ in range(30):\n"
        "    try:\n"
        "        print(client.submit_job(entrypoint='echo hello')); break\n"
        "    except RuntimeError:\n"  # the head's job agent may still be starting
        "        time.sleep(2)\n"
    ).strip()
    assert foreign
    for command in ("status", "logs", "stop"):
        run = cluster.robprune(command, foreign, "--address", cluster.address)
        assert run.returncode == 2 and "not submitted by robprune" in run.stderr, run.stderr
    listed = cluster.robprune("jobs", "--address", cluster.address)
    assert listed.returncode == 0 and foreign not in listed.stdout


def test_submit_validates_the_spec_locally(cluster, tmp_path):
    bad = _spec(tmp_path / "bad.yaml", "bad", epochs=1, storage=str(tmp_path / "exps"))
    bad.write_text(bad.read_text().replace("method: ce", "method: sgd"))
    run = cluster.robprune("submit", str(bad), "--address", cluster.address)
    assert run.returncode == 2 and "finetune.method" in run.stderr, run.stderr
    here = cluster.robprune("search", str(bad))  # the same message as a local search
    assert run.stderr.split("error:", 1)[1] == here.stderr.split("error:", 1)[1]
    spec = _spec(tmp_path / "s.yaml", "x", epochs=1, storage=str(tmp_path / "exps"))
    run = cluster.robprune(
        "submit", str(spec), "--address", cluster.address, "--storage",
        "s3://b/p?secret_key=abc123456",
    )  # fmt: skip
    assert run.returncode == 2 and "credentials in the URI" in run.stderr
    run = cluster.robprune(
        "submit", str(spec), "--address", cluster.address, "--env", "MY_TOKEN=abcd"
    )
    assert run.returncode == 2 and "--env MY_TOKEN" in run.stderr


# ------------------------------------------------------------------------------ jobs


def test_submit_follow_report(cluster, tmp_path):
    storage = cluster.root / "exps"
    spec = _spec(tmp_path / "grid.yaml", "grid-ok", epochs=2, storage=str(storage))
    job, location = cluster.submit(spec)
    assert location.startswith(str(storage / "grid-ok-"))  # the name gets a time suffix
    listed = cluster.robprune("jobs", "--address", cluster.address)
    assert job in listed.stdout and "search" in listed.stdout
    done = cluster.wait(job, lambda t: _state(t) == "SUCCEEDED")
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
    _check_complete(_local_trials(exp), 2)
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
    spec = _spec(tmp_path / "long.yaml", "grid-stop", epochs=LONG_EPOCHS, storage=str(storage))
    job, location = cluster.submit(spec, "--name", "grid-stop")
    assert location == str(storage / "grid-stop")
    cluster.wait(job, lambda t: "trials:" in t and " 0 RUNNING" not in t)
    run = cluster.robprune("stop", job, "--address", cluster.address)
    assert run.returncode == 0 and "resume" in run.stdout, run.stderr
    stopped = cluster.wait(job, lambda t: _state(t) == "STOPPED", timeout_s=120)
    assert "robprune resume " in stopped and "--submit" in stopped
    exp = storage / "grid-stop"
    run = cluster.robprune(
        "resume", str(exp), "--submit", "--address", cluster.address, "--python", sys.executable
    )
    assert run.returncode == 0, run.stdout + run.stderr
    job2 = run.stdout.split()[1]
    cluster.jobs.append(job2)
    cluster.wait(job2, lambda t: _state(t) == "SUCCEEDED")
    _check_complete(_local_trials(exp), 2)
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
    cluster.wait(job3, lambda t: _state(t) == "SUCCEEDED")
    logs = cluster.robprune("logs", job3, "--address", cluster.address)
    assert "nothing to resume" in logs.stdout, logs.stdout[-2000:]
    _check_complete(_local_trials(exp), 2)


def test_s3_kill_mid_trial_then_resume(cluster, tmp_path):
    require(MOTO, "moto_server is not installed (dev extra moto[server])")
    fs = cluster.s3()
    fs.create_dir(BUCKET)
    spec = _spec(
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
    cluster.wait(job, lambda t: _state(t) in ("FAILED", "STOPPED"), timeout_s=120)
    shutil.rmtree(cluster.root / "work", ignore_errors=True)  # the head's disk is gone too
    exp = f"s3://{BUCKET}/exps/opt-s3"
    run = cluster.robprune(
        "resume", exp, "--submit", "--address", cluster.address, "--python", sys.executable
    )
    assert run.returncode == 0, run.stdout + run.stderr
    job2 = run.stdout.split()[1]
    cluster.jobs.append(job2)
    cluster.wait(job2, lambda t: _state(t) == "SUCCEEDED")
    root = f"{BUCKET}/exps/opt-s3"
    with fs.open_input_file(f"{root}/results/trials.parquet") as handle:
        trials = pq.read_table(handle).to_pylist()
    _check_complete(trials, 2, grid=False)
    journal = tmp_path / "journal.log"  # from the bucket: the working copy was deleted
    with fs.open_input_stream(f"{root}/optuna/journal.log") as handle:
        journal.write_bytes(handle.read())
    import optuna

    from search.run.study import open_storage

    storage = open_storage(journal)
    (name,) = optuna.get_all_study_names(storage)  # named after the experiment
    study = optuna.load_study(study_name=name, storage=storage)
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

    spec = _spec(tmp_path / "s.yaml", "paths", epochs=1, storage=str(tmp_path / "exps"))
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
