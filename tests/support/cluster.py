"""A real Ray head for the cluster tests: `ray start --head` on 127.0.0.1, its own temp dir,
free ports, token authentication on with a planted token, and a moto S3 server on loopback,
both ended by PID; and the small specs and checks the tests share."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from tests.support.paths import ROOT
from tests.support.ray_head import LOOPBACK_ENV, RayHead, free_port
from tests.support.requirements import MOTO_SERVER as MOTO
from tests.support.trials import fast_trial

RAY_TOKEN = "plantedRayToken" + secrets.token_hex(12)
AWS_SECRET = "plantedAwsSecret" + secrets.token_hex(12)
BUCKET = "robprune"
#: Fine-tuning epochs of the jobs that are stopped or killed: long enough to be mid-trial
#: when that happens, short enough to finish after the resume.
# long enough (tens of seconds even on a fast machine) to stop or kill a job mid-trial
LONG_EPOCHS = 80


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


def job_state(text: str) -> str:
    return text.splitlines()[0].split()[2]


def write_spec(path: Path, name: str, *, epochs: int, storage: str, mode: str = "grid") -> Path:
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


def local_trials(exp: Path) -> list[dict]:
    return pq.read_table(exp / "results" / "trials.parquet").to_pylist()


def check_complete(trials: list[dict], n: int, *, grid: bool = True) -> None:
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == n and len(set(ids)) == n, ids
    assert all(t["status"] == "TERMINATED" for t in trials), [t["status"] for t in trials]
    if grid:
        assert {t["criterion"] for t in trials} == {"l1", "random"}
