"""Lose the node that runs a trial in the middle of fine-tuning.

A Ray cluster on this machine (`ray.cluster_utils.Cluster`): a head without CPUs and two worker
nodes with one CPU each, so every trial runs on a worker. When a trial has checkpointed at least
two epochs, the worker node that runs it is removed (its raylet and workers killed). Tune
retries the trial (`search.max_failures`) on the other node from its last epoch checkpoint; the
search completes with every trial exactly once, and trials.parquet says that the trial was
restored and from which epoch.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from search.run.ownership import parent_pid
from tests.support.trials import fast_trial

EPOCHS = 20  # long enough (about 0.3 s an epoch) for the watcher to catch one mid-way


@pytest.fixture
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    workers = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _mid_finetune(tune_dir: Path) -> tuple[str, int, int] | None:
    """(trial directory, worker pid, checkpointed epoch) of a trial past epoch 2, unfinished."""
    for trial in sorted(tune_dir.glob("trial_*")):
        try:
            ckpts = sorted(trial.glob("checkpoint_*"))
            if any((c / "final").exists() for c in ckpts) or len(ckpts) < 2:
                continue
            epoch = json.loads((ckpts[-1] / "progress.json").read_text())["epoch"]
            rows = [json.loads(ln) for ln in (trial / "result.json").read_text().splitlines()]
        except (OSError, ValueError, KeyError):
            continue
        if epoch >= 2 and rows:
            return trial.name, int(rows[-1]["pid"]), int(epoch)
    return None


def test_lost_node_trial_resumes_from_its_last_epoch(tmp_path, cluster):
    from search.run.runner import run_search
    from search.spec.parse import parse_spec

    cluster_obj, workers = cluster
    raw = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 400},
        dense={"method": "ce", "epochs": 2},
        prune={"criterion": {"choice": ["l1", "random"]}},
        finetune={"method": "pgd_at", "epochs": EPOCHS},
        threat={"train_steps": 2, "eval_steps": 3},
    )
    raw.pop("cache_dir")
    raw["search"] = {"mode": "grid", "max_concurrent": 2, "max_failures": 2}
    raw["resources"] = {"cpu": 1}
    spec = parse_spec(raw, name="lost", storage=str(tmp_path))
    tune_dir = tmp_path / "lost" / "tune" / "run-000"
    removed: dict = {}

    def remove_a_node() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not removed:
            found = _mid_finetune(tune_dir) if tune_dir.exists() else None
            if found:
                name, pid, epoch = found
                node = next((w for w in workers if _raylet_pid(w) == parent_pid(pid)), None)
                if node is not None:
                    cluster_obj.remove_node(node, allow_graceful=False)
                    removed.update(trial=name, epoch=epoch)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=remove_a_node, daemon=True)
    watcher.start()
    stream = io.StringIO()
    outcome = run_search(spec, stream=stream)
    watcher.join(timeout=5)
    assert removed, "no trial was caught mid-fine-tuning: " + stream.getvalue()[-2000:]

    trials = pq.read_table(Path(outcome.experiment.location, "results", "trials.parquet"))
    trials = trials.to_pylist()
    assert sorted(t["criterion"] for t in trials) == ["l1", "random"], stream.getvalue()
    assert all(t["status"] == "TERMINATED" for t in trials), [t["error"] for t in trials]
    assert all(t["epochs_completed"] == EPOCHS for t in trials)
    lost = next(t for t in trials if f"trial_{t['trial_id']}" == removed["trial"])
    assert lost["restores"] == 1
    assert lost["restored_from_epoch"] >= removed["epoch"] >= 2  # not from epoch 0
    others = [t for t in trials if t is not lost]
    assert all(t["restores"] == 0 for t in others)
    epochs = pq.read_table(Path(outcome.experiment.location, "results", "epochs.parquet"))
    rows = [e["epoch"] for e in epochs.to_pylist() if e["trial_id"] == lost["trial_id"]]
    assert sorted(rows) == list(range(1, EPOCHS + 1))
