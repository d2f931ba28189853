"""robprune's cluster commands against a real Ray head when something is wrong: an unreachable
head, a wrong port, a missing or wrong token, an unknown or foreign job, a bad spec (refused
before anything is sent). The head is tests/cluster/conftest.py's, shared with
tests/cluster/test_cluster_jobs.py.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.cluster import write_spec
from tests.support.ray_head import free_port

# a real `ray start` head and jobs: minutes, so outside the fast tier
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]


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
    bad = write_spec(tmp_path / "bad.yaml", "bad", epochs=1, storage=str(tmp_path / "exps"))
    bad.write_text(bad.read_text().replace("method: ce", "method: sgd"))
    run = cluster.robprune("submit", str(bad), "--address", cluster.address)
    assert run.returncode == 2 and "finetune.method" in run.stderr, run.stderr
    here = cluster.robprune("search", str(bad))  # the same message as a local search
    assert run.stderr.split("error:", 1)[1] == here.stderr.split("error:", 1)[1]
    spec = write_spec(tmp_path / "s.yaml", "x", epochs=1, storage=str(tmp_path / "exps"))
    run = cluster.robprune(
        "submit", str(spec), "--address", cluster.address, "--storage",
        "s3://b/p?secret_key=abc123456",
    )  # fmt: skip
    assert run.returncode == 2 and "credentials in the URI" in run.stderr
    run = cluster.robprune(
        "submit", str(spec), "--address", cluster.address, "--env", "MY_TOKEN=abcd"
    )
    assert run.returncode == 2 and "--env MY_TOKEN" in run.stderr
