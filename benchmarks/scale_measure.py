"""One measurement of `benchmarks/bench_scale.py`, in a process of its own (driver CPU and peak
memory are this process's): start Ray (local with many logical CPUs, or a simulated cluster of
several nodes), run robprune's real search with the stand-in compute (`scale_standin.py`),
then time the journal's opening, a resume of the finished experiment, the export and the
report. Prints one JSON line.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


#: The grid's criteria: each prunes differently under any ratio rule (lamp is left out: under a
#: per-layer rule it resolves like l2, and the grid's dedupe would drop its cells).
GRID_CRITERIA = ("l1", "l2", "fpgm", "taylor", "random")


def _split(n: int) -> tuple[int, int]:
    """n as a x b with a <= b and a as large as can be (the two factors nearly equal)."""
    a = max(d for d in range(1, int(n**0.5) + 1) if n % d == 0)
    return a, n // a


def grid_levels(size: int) -> dict[str, int]:
    """Levels per factor of a grid of exactly `size` cells: criteria (5, 4, 2 or 1 of them,
    the most that divide `size`) x sparsities x fine-tuning learning rates, the last two
    nearly equal (20: 5 x 2 x 2; 200: 5 x 5 x 8; 2,000: 5 x 20 x 20). A real grid is a
    product of factors with a few levels each; its trials' records do not grow with it."""
    criteria = next(c for c in (5, 4, 2, 1) if size % c == 0)
    sparsities, lrs = _split(size // criteria)
    return {"criterion": criteria, "sparsity": sparsities, "lr": lrs}


def _levels(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else {"choice": values}


def spec_raw(case: dict[str, Any]) -> dict[str, Any]:
    """A digits search of `size` trials: a grid of `size` distinct cells (criterion x sparsity
    x learning rate, `grid_levels`), or TPE over a range of sparsities."""
    n = int(case["size"])
    criterion: Any = "l1"
    finetune: dict[str, Any] = {"method": "ce", "epochs": int(case["epochs"])}
    if case["mode"] == "grid":
        levels = grid_levels(n)
        k, m = levels["sparsity"], levels["lr"]
        sparsity: Any = _levels([round(0.1 + 0.8 * i / max(1, k - 1), 6) for i in range(k)])
        criterion = _levels(list(GRID_CRITERIA[: levels["criterion"]]))
        finetune["lr"] = _levels([round(0.01 * (1 + i), 6) for i in range(m)])
        search: dict[str, Any] = {"mode": "grid"}
    else:
        sparsity = {"uniform": [0.1, 0.9]}
        search = {"mode": "optimize", "num_samples": n, "sampler": sampler_of(case)}
    search["max_concurrent"] = int(case["concurrency"])
    return {
        "name": case["name"],
        "seed": 0,
        "device": "cpu",
        "cache_dir": case["cache_dir"],
        "data": {"dataset": "digits", "train_limit": 300},
        "model": {"arch": "digits_cnn"},
        "dense": {"method": "ce", "epochs": 1},
        "threat": {"train_steps": 2, "eval_steps": 2},
        "prune": {"sparsity": sparsity, "criterion": criterion},
        "finetune": finetune,
        "eval": {"attacks": ["pgd2"], "primary": "pgd2", "epoch_attack": "pgd2"},
        "search": search,
        "resources": {"cpu": 1},
    }


def sampler_of(case: dict[str, Any]) -> str | None:
    """The Optuna sampler of an optimize run (TPE unless `--sampler` said); a grid has none."""
    return None if case["mode"] == "grid" else case.get("sampler", "tpe")


def runtime_env(case: dict[str, Any]) -> dict[str, Any]:
    from scale_standin import EPOCH_S_ENV, TEMPLATE_ENV

    path = os.pathsep.join([str(ROOT), str(BENCH), os.environ.get("PYTHONPATH", "")])
    return {
        "worker_process_setup_hook": "scale_standin.install",
        "env_vars": {
            "PYTHONPATH": path,
            TEMPLATE_ENV: case["template"],
            EPOCH_S_ENV: str(case["epoch_s"]),
        },
    }


def _start_ray(case: dict[str, Any]) -> Any:
    """Local Ray with `cpus` logical CPUs, or a `ray.cluster_utils.Cluster` of `nodes` nodes."""
    import ray

    from search.run.ownership import ray_temp_dir

    cpus, nodes = int(case["cpus"]), int(case["nodes"])
    temp_dir = ray_temp_dir()  # this run's own: no other Ray's sessions on the machine
    if nodes <= 1:
        ray.init(
            address="local",
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=runtime_env(case),
            _temp_dir=temp_dir,
        )
        return None
    from ray.cluster_utils import Cluster

    loopback = {"node_ip_address": "127.0.0.1", "temp_dir": temp_dir}
    head = {"num_cpus": 0, "include_dashboard": False, **loopback}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(nodes):
        cluster.add_node(num_cpus=max(1, cpus // nodes), **loopback)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, runtime_env=runtime_env(case))
    return cluster


class SuggestTimer:
    """Times `StudySearch.suggest` in this driver (the searcher runs here)."""

    def __init__(self) -> None:
        from search.run.tune_internals import StudySearch

        self.samples_ms: list[float] = []
        original = StudySearch.suggest
        timer = self

        def timed(self: Any, trial_id: str) -> Any:
            start = time.perf_counter()
            try:
                return original(self, trial_id)
            finally:
                timer.samples_ms.append((time.perf_counter() - start) * 1000)

        StudySearch.suggest = timed

    def quantile(self, q: float) -> float | None:
        if not self.samples_ms:
            return None
        ordered = sorted(self.samples_ms)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _io_written() -> int:
    """Bytes this process handed to write() (files and sockets): /proc/self/io's wchar."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _journal_open_s(exp: Any) -> float:
    import optuna

    from search.run.study import open_storage

    def load() -> int:
        """Replay the journal and read every trial of every study in it (none for a grid
        search written before grids recorded their study)."""
        if not exp.journal_path.exists():
            return 0
        storage = open_storage(exp.journal_path)
        return sum(
            len(optuna.load_study(study_name=s.study_name, storage=storage).get_trials())
            for s in storage.get_all_studies()
        )

    return timed(load)[1]


def _tune_state_bytes(exp: Any) -> int:
    return sum(
        p.stat().st_size for p in Path(exp.work_dir).rglob("experiment_state*.json") if p.is_file()
    )


def _report_s(results_dir: str, out: Path) -> float:
    command = [sys.executable, "-m", "cli", "report", results_dir, "-o", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(case: dict[str, Any]) -> dict[str, Any]:
    import ray

    from search.spec.parse import parse_spec

    spec = parse_spec(spec_raw(case), name=case["name"], storage=case["storage"])
    if case["mode"] == "grid":  # every cell distinct: none dropped by the grid's dedupe
        assert len(spec.grid) == int(case["size"]), (len(spec.grid), case["size"])
    cluster = _start_ray(case)
    try:
        return _measure(case, spec, cluster)
    finally:  # also on SIGTERM (the parent's timeout): no Ray process outlives this one
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def _measure(case: dict[str, Any], spec: Any, cluster: Any) -> dict[str, Any]:
    import ray

    if case.get("interrupt_only"):  # the killed-driver resume alone
        from scale_interrupt import measure_interrupted

        address = ray.get_runtime_context().gcs_address
        keys = ("mode", "storage_kind", "nodes", "size", "concurrency")
        row = {k.removesuffix("_kind"): case[k] for k in keys}
        row["concurrency"] = min(int(case["concurrency"]), int(case["cpus"]))
        row["sampler"] = sampler_of(case)
        row["interrupt_only"] = True  # --replot merges it into the full run's row
        return {**row, **measure_interrupted(case, address, cluster)}

    from search.results.export import export_experiment
    from search.run.runner import resume_experiment, run_search

    timer = SuggestTimer()
    log = io.StringIO()
    cpu0, io0, t0 = _cpu_s(), _io_written(), time.perf_counter()
    outcome = run_search(spec, stream=log)
    wall = time.perf_counter() - t0
    cpu, written = _cpu_s() - cpu0, _io_written() - io0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    exp = outcome.experiment
    n = int(case["size"])
    concurrency = min(int(case["concurrency"]), int(case["cpus"]))
    ideal = n * int(case["epochs"]) * float(case["epoch_s"]) / concurrency
    _, export_s = timed(lambda: export_experiment(exp))
    resume_log = io.StringIO()
    _, resume_s = timed(lambda: resume_experiment(exp.location, stream=resume_log))
    row = {
        "mode": case["mode"],
        "sampler": sampler_of(case),
        "storage": case["storage_kind"],
        "nodes": int(case["nodes"]),
        "size": n,
        "concurrency": concurrency,
        "completed": outcome.completed,
        "failed": outcome.failed,
        "suggest_calls": len(timer.samples_ms),
        "suggest_total_s": round(sum(timer.samples_ms) / 1000, 2),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "overhead_per_trial_s": round((wall - ideal) / n, 4),
        "driver_cpu_per_trial_s": round(cpu / n, 4),
        "suggest_p50_ms": timer.quantile(0.5),
        "suggest_p99_ms": timer.quantile(0.99),
        "journal_bytes": exp.journal_path.stat().st_size if exp.journal_path.exists() else 0,
        "journal_open_s": round(_journal_open_s(exp), 3),
        "tune_state_bytes": _tune_state_bytes(exp),
        "bytes_pushed": written,
        "bytes_pushed_per_trial": round(written / n),
        "resume_s": round(resume_s, 2),
        "export_s": round(export_s, 2),
        "report_s": round(_report_s(str(outcome.results_dir), Path(case["work"]) / "report"), 2),
        "driver_peak_mb": round(peak_mb),
    }
    if case.get("interrupt"):
        from scale_interrupt import measure_interrupted

        print("MEASURED " + json.dumps(row), flush=True)  # kept if the killed part runs out
        address = ray.get_runtime_context().gcs_address
        row.update(measure_interrupted({**case, "measured_wall_s": wall}, address, cluster))
    return row


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(BENCH)]
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    result = measure(json.loads(sys.argv[1]))
    print("RESULT " + json.dumps(result), flush=True)
