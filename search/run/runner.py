"""Entry points of a search: `run_search` (a new experiment) and `resume_experiment`.

`resume_experiment` restores the unfinished Tune runs of an experiment and optionally extends
the same Optuna study by N trials (a new Tune run in the same experiment, whose sampler sees
every earlier trial through the shared journal). The parts live beside this module in
`search.run`: Ray in `session`, the dense stage in `dense_stage`, Tune in `tuner`, the
reconciliation before a restore in `reconcile`, Ctrl-C in `interrupt`, the end of a run in
`outcome`.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from typing import Any

import pyarrow.parquet as pq

from robprune.config.spec_yaml import load_yaml_text
from robprune.errors import BadInput
from search.plan.footprint import estimate_bytes
from search.run.dense_stage import run_dense_stage
from search.run.interrupt import InterruptState, handle_sigint
from search.run.outcome import RunOutcome, finish_run, stopped_by_storage
from search.run.ownership import owner_mark, ray_temp_dir, reap_dead_driver, record_driver
from search.run.session import configure_driver, is_local, prepare_environment, ray_session
from search.run.storage_fault import StorageFault, as_storage_fault, faulted, raise_if_faulted
from search.spec.model import Spec
from search.spec.parse import parse_spec
from search.state import storage
from search.state.experiment import Experiment, Segment
from search.state.journal_file import repair_journal
from search.state.storage import parent
from search.state.storage_check import check_new_location, check_resumable

__all__ = [
    "RunOutcome",
    "run_search",
    "resume_experiment",
    "load_experiment_spec",
    "owns_local_ray",
]


def _hint(location: str) -> str:
    return f"Continue with `robprune resume {location}`."


def _fit(tuner: Any, exp: Experiment, segment: Segment, sigint: InterruptState) -> None:
    from search.run.fault_board import open_board  # Ray: after prepare_environment

    exp.set_segment_status(segment.name, "running")
    open_board()
    sigint.tuning = True
    try:
        tuner.fit()
    except Exception:
        if not faulted():  # else Tune's own reading of what the fault cut short failed
            raise
    finally:
        sigint.tuning = False
    raise_if_faulted()  # before anything else is written to a storage that failed
    storage.push(exp, "optuna")


@contextmanager
def _storage_faults(exp: Experiment | None, stream: Any, outcome: list[RunOutcome]) -> Any:
    """A storage fault anywhere in the body ends the search with one line (exit 75)."""
    try:
        yield
    except (StorageFault, OSError) as exc:
        fault = exc if isinstance(exc, StorageFault) else as_storage_fault(exc)
        if fault is None or exp is None:
            raise
        outcome.append(stopped_by_storage(exp, fault, stream))


def _announce_interrupt(exp: Experiment, stream: Any) -> None:
    print(f"\ninterrupted: {_hint(exp.location)}", file=stream, flush=True)


def owns_local_ray(address: str | None) -> bool:
    """Whether this driver will start its own local Ray (no cluster, none running here)."""
    if not is_local(address):
        return False
    import ray

    return not ray.is_initialized()


def _create(spec: Spec) -> Experiment:
    """The new experiment, its first run recorded (begun, Tune not started yet)."""
    exp = Experiment.create(
        spec.storage,
        spec.name,
        mode=spec.search.mode,
        spec_yaml=spec.to_yaml(),
        first_run=True,
        num_samples=_num_samples(spec),
    )
    if exp.remote:  # a working copy left by an earlier experiment of the same location
        exp.journal_path.unlink(missing_ok=True)
    return exp


def _num_samples(spec: Spec) -> int | None:
    return None if spec.search.mode == "grid" else spec.search.num_samples


def run_search(spec: Spec, *, address: str | None = None, stream: Any = None) -> RunOutcome:
    """A new experiment from a validated spec: create it, train dense models, search."""
    prepare_environment(local=is_local(address))
    stream = stream or sys.stdout
    location = Experiment.check_new(spec.storage, spec.name).location

    check_new_location(location, estimate_bytes(spec))  # writable, with room: before anything
    configure_driver(spec)
    with ExitStack() as stack:
        sigint = stack.enter_context(handle_sigint(_hint(location)))
        if owns_local_ray(address):  # recorded before Ray starts: a kill leaves no stray
            exp, ray_dir = _create(spec), ray_temp_dir()
            if (stopped := _record_driver(exp, ray_dir, stream)) is not None:
                return stopped
            stack.enter_context(owner_mark(ray_dir))
            stack.enter_context(ray_session(None, temp_dir=ray_dir))
        else:  # a cluster first: a bad address must not leave a directory behind
            stack.enter_context(ray_session(address))
            exp = _create(spec)
            if (stopped := _record_driver(exp, None, stream)) is not None:
                return stopped
        print(f"experiment: {exp.location}", file=stream, flush=True)
        if spec.search.dedupe and spec.grid_repeats is not None and spec.grid_repeats.repeats:
            print(f"grid: {spec.grid_repeats.describe()}", file=stream, flush=True)
        segment, faulted = exp.segments[0], []
        try:
            with _storage_faults(exp, stream, faulted):
                run_dense_stage(spec, exp, stream)
                storage.push(exp, "dense")
                from search.run.tuner import build_tuner  # Ray: after prepare_environment

                _fit(build_tuner(spec, exp, segment, stream=stream), exp, segment, sigint)
                return finish_run(spec, exp, segment, stream, interrupted=sigint.interrupted)
            return faulted[0]
        except KeyboardInterrupt:
            _announce_interrupt(exp, stream)
            raise


def _record_driver(exp: Experiment, ray_dir: str | None, stream: Any) -> RunOutcome | None:
    """Record this driver; a storage that fails already stops the search with its line."""
    faulted: list[RunOutcome] = []
    with _storage_faults(exp, stream, faulted):
        record_driver(exp, ray_dir=ray_dir)
    return faulted[0] if faulted else None


def load_experiment_spec(exp: Experiment) -> Spec:
    try:
        text = exp.read_spec_yaml()
    except FileNotFoundError:
        raise BadInput(
            f"{storage.join(exp.location, 'spec.yaml')}: missing (the experiment's spec)"
        ) from None
    raw = load_yaml_text(text, source=storage.join(exp.location, "spec.yaml"))
    return parse_spec(raw, name=exp.name, storage=parent(exp.location))


def _index(exp: Experiment, segment: Segment) -> int:
    return [s.name for s in exp.segments].index(segment.name)


def open_for_resume(location: str, extend: int) -> tuple[Experiment, Spec]:
    """Every check that needs no Ray: bad storage or arguments are exit 2, nothing changed."""
    if extend < 0:
        raise BadInput(f"--extend must be >= 0, got {extend}")
    exp = Experiment.open(location)
    spec = load_experiment_spec(exp)
    if extend and spec.search.mode == "grid":
        raise BadInput(
            "--extend adds trials to an Optuna study; this experiment is a grid "
            "(run a new search with more seeds instead)"
        )
    check_resumable(exp)
    reap_dead_driver(exp)
    return exp, spec


def _nothing_to_resume(spec: Spec, exp: Experiment, extend: int, stream: Any) -> RunOutcome | None:
    """A finished experiment and no --extend: say so and write nothing (no Ray, no export).

    Not when the spec asks for finalists: a resume also finishes a finalists stage that was
    cut short (`robprune finalize` does the same on its own).
    """
    if extend or not exp.segments or any(s.status != "finished" for s in exp.segments):
        return None
    if spec.fixed_value("eval.autoattack") == "finalists":
        return None

    try:
        status = pq.read_table(
            f"{exp.fs_path}/results/trials.parquet", columns=["status"], filesystem=exp.fs
        ).column("status")
    except (OSError, KeyError):
        return None  # no readable results yet: the resume exports them
    counts = {s: status.to_pylist().count(s) for s in ("TERMINATED", "ERROR")}
    print(
        f"nothing to resume: every run finished ({counts['TERMINATED']} TERMINATED, "
        f"{counts['ERROR']} ERROR of {len(status)} trials); nothing was written. Add trials "
        f"with `robprune resume {exp.location} --extend N`",
        file=stream,
    )
    return RunOutcome(
        experiment=exp,
        completed=counts["TERMINATED"],
        failed=counts["ERROR"],
        unfinished=len(status) - sum(counts.values()),
        interrupted=False,
        results_dir=exp.path("results"),
    )


def resume_experiment(
    location: str,
    *,
    extend: int = 0,
    address: str | None = None,
    stream: Any = None,
) -> RunOutcome:
    """Finish what was interrupted (finished trials are never rerun), then add `extend` trials."""
    prepare_environment(local=is_local(address))
    stream = stream or sys.stdout
    exp, spec = open_for_resume(location, extend)
    print(f"experiment: {exp.location}", file=stream, flush=True)
    done = _nothing_to_resume(spec, exp, extend, stream)
    if done is not None:
        return done
    configure_driver(spec)
    ray_dir = ray_temp_dir() if owns_local_ray(address) else None
    faulted: list[RunOutcome] = []
    with _storage_faults(exp, stream, faulted):  # the storage can fail before Ray starts too
        _prepare_resume(exp, ray_dir, stream)
    if faulted:
        return faulted[0]
    with (
        handle_sigint(_hint(exp.location)) as sigint,
        owner_mark(ray_dir),
        ray_session(address, temp_dir=ray_dir),
    ):
        try:
            with _storage_faults(exp, stream, faulted):
                return _resume(spec, exp, extend, sigint, stream)
            return faulted[0]
        except KeyboardInterrupt:
            _announce_interrupt(exp, stream)
            raise


def _prepare_resume(exp: Experiment, ray_dir: str | None, stream: Any) -> None:
    """The journal fetched and repaired, this driver recorded: the writes before Ray."""
    from search.run.durable import pull_journal, push_journal  # Tune's Callback: Ray

    pull_journal(exp)  # storage is the record: the local working copy may be gone or stale
    note = repair_journal(exp.journal_path, full=True)
    if note:
        print(f"note: {note}", file=stream, flush=True)
        push_journal(exp)  # the stored copy (object storage) is the repaired one, whole
    record_driver(exp, ray_dir=ray_dir)


def _resume(
    spec: Spec, exp: Experiment, extend: int, sigint: InterruptState, stream: Any
) -> RunOutcome:
    from search.run import reconcile, tuner  # Ray, Optuna: after prepare_environment

    if not exp.segments:  # stopped before its first run began: begin it now
        exp.add_segment(_num_samples(spec))
    unfinished = [s for s in exp.segments if s.status != "finished"]
    run_dense_stage(spec, exp, stream)
    storage.push(exp, "dense")
    outcome = None
    for segment in unfinished:
        reconciled = reconcile.reconcile_run(spec, exp, segment)
        print(reconciled.describe(), file=stream, flush=True)
        storage.push(exp, "optuna")
        run_tuner = (
            tuner.restored_tuner(spec, exp, segment, stream) if reconciled.restorable else None
        )
        if run_tuner is None:  # no usable Tune snapshot: a new Tune run, rebuilt from the records
            run_tuner = tuner.build_tuner(
                spec, exp, segment, offset=_index(exp, segment), stream=stream
            )
        print(f"resuming {segment.name}", file=stream, flush=True)
        _fit(run_tuner, exp, segment, sigint)
        outcome = finish_run(spec, exp, segment, stream, interrupted=sigint.interrupted)
        if outcome.interrupted or outcome.unfinished:
            return outcome
    if extend:
        segment = exp.add_segment(extend)
        print(f"extending the study by {extend} trials ({segment.name})", file=stream, flush=True)
        run_tuner = tuner.build_tuner(
            spec, exp, segment, offset=_index(exp, segment), stream=stream
        )
        _fit(run_tuner, exp, segment, sigint)
        outcome = finish_run(spec, exp, segment, stream, interrupted=sigint.interrupted)
    if outcome is None:
        print("nothing to resume: every run of the experiment finished", file=stream)
        # never empty: a run was begun above when the experiment had none
        outcome = finish_run(spec, exp, exp.segments[-1], stream, interrupted=sigint.interrupted)
    return outcome
