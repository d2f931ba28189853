"""The node-loss fault of `benchmarks/bench_scale.py --nodes K` (with the killed driver of
`scale_interrupt.py`): remove the worker node that runs the most unfinished trials, the way
tests/system/test_search_node_loss.py does (`Cluster.remove_node`, not graceful), add a fresh
node in its place, and record which trials ran there and the epoch each had checkpointed. After
the resume, trials.parquet says whether each continued from its checkpoint (`restores`,
`restored_from_epoch`) or started again from zero.

Only for local storage (it reads the trials' folders to find their worker processes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search.run.ownership import parent_pid
from search.run.reconcile import END_MARKER


def _ancestors(pid: int, depth: int = 4) -> list[int]:
    """The process's parent, grandparent and so on: a worker started with a runtime
    environment runs under a setup process, not right under its node's raylet."""
    found: list[int] = []
    while len(found) < depth and (parent := parent_pid(pid)) not in (None, 0, 1):
        found.append(parent)
        pid = parent
    return found


def _raylet_pid(node: Any) -> int:
    return node.all_processes["raylet"][0].process.pid


def _running(location: str) -> dict[str, tuple[int, int]]:
    """Unfinished trials with a reported epoch: folder name -> (worker pid, checkpointed epoch)."""
    found: dict[str, tuple[int, int]] = {}
    for trial in Path(location).glob("tune/run-*/trial_*"):
        if (trial / END_MARKER).exists():
            continue
        try:
            lines = (trial / "result.json").read_text().splitlines()
            pid = int(json.loads(lines[-1])["pid"])
        except (OSError, ValueError, KeyError, IndexError):
            continue
        epoch = 0
        for ckpt in trial.glob("checkpoint_*"):
            try:
                epoch = max(epoch, int(json.loads((ckpt / "progress.json").read_text())["epoch"]))
            except (OSError, ValueError, KeyError):
                continue
        found[trial.name] = (pid, epoch)
    return found


def lose_a_node(cluster: Any, location: str, num_cpus: int) -> dict[str, int]:
    """Remove the worker node running the most unfinished trials and add a fresh one in its
    place (the autoscaler's replacement). Returns {trial folder: checkpointed epoch} of the
    trials that ran on the removed node."""
    running = _running(location)
    nodes = list(cluster.worker_nodes)
    on_node = {
        id(node): {
            name: epoch
            for name, (pid, epoch) in running.items()
            if _raylet_pid(node) in _ancestors(pid)
        }
        for node in nodes
    }
    node = max(nodes, key=lambda n: len(on_node[id(n)]))
    cluster.remove_node(node, allow_graceful=False)
    temp_dir = cluster.head_node.get_temp_dir_path()
    cluster.add_node(num_cpus=num_cpus, node_ip_address="127.0.0.1", temp_dir=temp_dir)
    return on_node[id(node)]


def lost_trials_outcome(lost: dict[str, int], table: list[dict[str, Any]]) -> dict[str, Any]:
    """How the trials of the removed node ended: continued from (at least) the epoch they had
    checkpointed, started again from zero, or missing from the results."""
    rows = {f"trial_{row['trial_id']}": row for row in table}
    continued = from_zero = missing = 0
    for name, epoch in lost.items():
        row = rows.get(name)
        if row is None:
            missing += 1
        elif (row.get("restores") or 0) > 0 and (row.get("restored_from_epoch") or 0) >= epoch:
            continued += 1
        elif epoch > 0:
            from_zero += 1
    return {
        "lost_node_trials": len(lost),
        "lost_node_checkpointed": sum(1 for e in lost.values() if e > 0),
        "lost_node_continued": continued,
        "lost_node_checkpointed_not_continued": from_zero,
        "lost_node_missing": missing,
    }
