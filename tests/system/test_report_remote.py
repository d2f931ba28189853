"""`robprune report s3://.../results -o s3://.../report` against a moto S3 server on loopback:
the laptop side of a cluster search whose results live in a bucket."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from tests.support.analysis_tables import planted_trials, write_experiment
from tests.support.moto_server import moto_server
from tests.support.paths import ROOT
from tests.support.requirements import MOTO_SERVER as MOTO
from tests.support.requirements import require


@pytest.fixture
def bucket():
    require(MOTO, "moto_server is not installed (dev extra moto[server])")
    with moto_server() as port:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "PYTHONPATH": str(ROOT),
        }
        fs = pafs.S3FileSystem(
            access_key="test",
            secret_key="test",
            region="us-east-1",
            scheme="http",
            endpoint_override=f"127.0.0.1:{port}",
            allow_bucket_creation=True,
        )
        fs.create_dir("rpbucket")
        yield fs, env


def test_report_reads_and_writes_s3(bucket, tmp_path):
    fs, env = bucket
    trials = planted_trials({"finetune_method": 0.6, "criterion": 0.05}, seeds=2, n=120)
    results = write_experiment(tmp_path / "exp", trials)
    pafs.copy_files(str(results), "rpbucket/exps/e1/results", destination_filesystem=fs)
    cmd = [sys.executable, "-m", "cli", "report"]
    run = subprocess.run(
        [*cmd, "s3://rpbucket/exps/e1/results", "-o", "s3://rpbucket/exps/e1/report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "report: s3://rpbucket/exps/e1/report/index.html" in run.stdout
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector("rpbucket/exps/e1/report"))}
    assert {"index.html", "report.md"} <= names
    # the experiment directory works as well, and a missing one is one line, exit 2
    local = subprocess.run(
        [*cmd, "s3://rpbucket/exps/e1", "-o", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0 and (tmp_path / "r" / "index.html").exists(), local.stderr
    missing = subprocess.run(
        [*cmd, "s3://rpbucket/exps/nothing", "-o", str(tmp_path / "r2")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
