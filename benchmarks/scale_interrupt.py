"""The killed-driver part of `benchmarks/bench_scale.py`: a second driver runs the same search
under another name on the same Ray and is SIGKILLed once half its trials ended; then
`resume_experiment` runs in a process of its own, as a user's `robprune resume` would, under
a time limit (a resume that never ends is a finding, reported as such, not a hung benchmark).
On a simulated cluster (`--nodes K`) a worker node is removed at a quarter of the trials too.

Measured: the reconciliation, the time from the resume's start to its first trial ended
(`resume_first_trial_s`: the resume is running the search again), the resume to the end, and
what trials.parquet holds (rows, distinct trials, missing ones, restored ones and from which
epoch). The resume times itself, in its own process (its first trial's end is the first call
of its end-marker callback): watching the storage from outside would compete with it, and on
S3 a listing of the whole experiment every quarter second took much of the one moto process.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from scale_faults import lose_a_node, lost_trials_outcome
from scale_measure import BENCH, ROOT, runtime_env, spec_raw, timed

#: When this module was imported (in the resume's process: its start, nearly).
T0 = time.perf_counter()
#: Seconds a resume may take beyond the stand-in's own remaining compute.
RESUME_SLACK_S = 300.0


def _ended_trials(location: str) -> int:
    """End markers under the experiment (local or in the bucket): trials the driver saw end."""
    import pyarrow.fs as pafs

    from search.run.reconcile import END_MARKER
    from search.state import storage

    fs, path = storage.filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(f"{path}/tune", recursive=True))
    except (FileNotFoundError, OSError):
        return 0
    return sum(1 for info in infos if info.base_name == END_MARKER)


def _child(mode: str, case: dict[str, Any], address: str) -> list[str]:
    return [sys.executable, __file__, mode, json.dumps(case), address]


def _wait_for(location: str, ended: int, driver: subprocess.Popen, deadline: float) -> None:
    """Until `ended` trials ended. Each look lists the whole experiment: the next waits twice
    as long as it took, so that the watching takes at most a third of the storage's time."""
    while driver.poll() is None and time.monotonic() < deadline:
        start = time.monotonic()
        if _ended_trials(location) >= ended:
            return
        time.sleep(max(0.5, 2 * (time.monotonic() - start)))


def _kill_at_half(
    case: dict[str, Any], address: str, location: str, cluster: Any, lost: dict[str, int]
) -> int:
    """Run the search in its own driver; lose a node at a quarter (on a simulated cluster:
    `lost` gets its trials), SIGKILL the driver at half its trials. Returns the trials that
    had ended then."""
    driver = subprocess.Popen(
        _child("--drive", case, address), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + float(case.get("timeout", 3600))
    if cluster is not None:
        _wait_for(location, int(case["size"]) // 4, driver, deadline)
        num_cpus = max(1, int(case["cpus"]) // int(case["nodes"]))
        lost.update(lose_a_node(cluster, location, num_cpus))
    _wait_for(location, int(case["size"]) // 2, driver, deadline)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    return _settled(location)


def _settled(location: str, quiet_s: float = 3.0, limit_s: float = 60.0) -> int:
    """Ended trials once no more end for `quiet_s` (workers of the dead driver wind down)."""
    count, since, start = _ended_trials(location), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - start < limit_s:
        time.sleep(0.5)
        now = _ended_trials(location)
        if now != count:
            count, since = now, time.monotonic()
    return count


def _rows(location: str, lost: dict[str, int] | None) -> dict[str, Any]:
    """The exported trials: how many, how many distinct, how many were restored."""
    import pyarrow.parquet as pq

    from search.state import storage

    fs, path = storage.filesystem(location)
    table = pq.read_table(f"{path}/results/trials.parquet", filesystem=fs).to_pylist()
    ids = [row["trial_id"] for row in table]
    restored = [row for row in table if (row.get("restores") or 0) > 0]
    epochs = Counter(row.get("restored_from_epoch") for row in restored)
    return {
        "rows": len(ids),
        "distinct_rows": len(set(ids)),
        "restored_rows": len(restored),
        "restored_from_epoch": {str(k): v for k, v in sorted(epochs.items(), key=str)},
        **(lost_trials_outcome(lost, table) if lost is not None else {}),
    }


def measure_interrupted(case: dict[str, Any], address: str, cluster: Any) -> dict[str, Any]:
    """Kill a driver at half its trials (and lose a node before, on a simulated cluster),
    resume it to the end; what the resume did and what the results hold."""
    from search.state.experiment import Experiment

    case = {**case, "name": f"{case['name']}-killed"}
    location = Experiment.check_new(case["storage"], case["name"]).location
    lost: dict[str, int] = {}
    killed_at = _kill_at_half(case, address, location, cluster, lost)
    compute = int(case["size"]) * int(case["epochs"]) * float(case["epoch_s"])
    limit = RESUME_SLACK_S + max(compute, float(case.get("measured_wall_s", 0.0)))
    limit = max(limit, float(case.get("timeout", 0.0)) / 2)  # --interrupt-only: no full run
    proc = subprocess.Popen(
        _child("--resume", {**case, "location": location}, address),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=120)
        return {"killed_after_ended": killed_at, "resume_interrupted_s": f"> {limit:.0f} (hung)"}
    lines = [x for x in out.splitlines() if x.startswith("RESUMED ")]
    if not lines:
        return {"killed_after_ended": killed_at, "resume_interrupted_s": "failed"}
    resumed = json.loads(lines[-1].removeprefix("RESUMED "))
    size = int(case["size"])
    rows = _rows(location, lost if cluster is not None else None)
    return {
        "killed_after_ended": killed_at,
        **resumed,
        **rows,
        "missing_rows": size - rows["distinct_rows"],
    }


def _drive(case: dict[str, Any], address: str) -> None:
    """The driver that is killed: the same search, attached to the same Ray."""
    import ray

    from search.run.runner import run_search
    from search.spec.parse import parse_spec

    ray.init(address=address, log_to_driver=False, runtime_env=runtime_env(case))
    run_search(parse_spec(spec_raw(case), name=case["name"], storage=case["storage"]))


class _Stamped(io.StringIO):
    """The resume's own lines, each with the seconds since the resume began when first seen
    (where its time goes: opening, reconciliation, Tune's restore, the run)."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start, self.phases, self.done = start, {}, False

    def write(self, text: str) -> int:
        for line in text.splitlines():
            key = line.split(":", 1)[0].strip()[:40]
            if key and not self.done and key not in self.phases:
                self.phases[key] = round(time.perf_counter() - self.start, 2)
                self.done = key.startswith("resuming")  # the run's own lines are not phases
        return super().write(text)


def _resume(case: dict[str, Any], address: str) -> dict[str, Any]:
    """`resume_experiment` of the killed experiment, its reconciliation timed apart."""
    import ray

    import search.run.reconcile as reconcile
    from search.run.end_marker import EndMarkerCallback
    from search.run.runner import resume_experiment

    ray.init(address=address, log_to_driver=False, runtime_env=runtime_env(case))
    said = _Stamped(T0)
    said.phases["ray attached"] = round(time.perf_counter() - T0, 2)
    spent: list[float] = []
    original = reconcile.reconcile_run

    def timed_reconcile(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    reconcile.reconcile_run = timed_reconcile
    first: list[float] = []  # when the resumed run ended its first trial
    on_trial_complete = EndMarkerCallback.on_trial_complete

    def timed_end(self: Any, *args: Any, **kwargs: Any) -> None:
        on_trial_complete(self, *args, **kwargs)
        if not first:
            first.append(round(time.perf_counter() - T0, 2))

    EndMarkerCallback.on_trial_complete = timed_end
    outcome, total = timed(lambda: resume_experiment(case["location"], stream=said))
    if outcome.completed != int(case["size"]) or outcome.interrupted:
        print(f"{case['name']}: the resume said:\n{said.getvalue()}", file=sys.stderr)
    return {
        "resume_first_trial_s": first[0] if first else None,
        "resume_phases_s": said.phases,
        "resume_interrupted_reconcile_s": round(sum(spent), 2),
        "resume_interrupted_s": round(total, 2),
        "completed_after_resume": outcome.completed,
        "resume_said_interrupted": outcome.interrupted,
    }


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(BENCH)]
    if sys.argv[1] == "--drive":
        _drive(json.loads(sys.argv[2]), sys.argv[3])
    else:
        print("RESUMED " + json.dumps(_resume(json.loads(sys.argv[2]), sys.argv[3])), flush=True)
