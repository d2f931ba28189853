"""status.json's writer: what it reads of each trial and how often it writes (no Ray)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from search.run.status_callback import StatusFileCallback
from search.state.status_file import status_payload


class _Trial:
    """A Tune trial as the writer sees it; `last_result` (Tune's property) must not be read."""

    def __init__(self, trial_id: str, status: str, result: dict | None):
        self.trial_id, self.status = trial_id, status
        self.run_metadata = SimpleNamespace(last_result=result or {})

    @property
    def last_result(self) -> dict:
        raise AssertionError("Trial.last_result builds a key set on every read")


def test_payload_reads_the_stored_results_only():
    trials = [
        _Trial("a", "TERMINATED", {"robust_acc": 0.4}),
        _Trial("b", "RUNNING", {"robust_acc": 0.6}),
        _Trial("c", "PENDING", None),
    ]
    payload = status_payload(
        trials, metric="robust_acc", mode="max", total=5, run="run-000", state="running"
    )
    assert payload["best_validation"]["trial_id"] == "b"
    assert payload["trials"]["TERMINATED"] == 1 and payload["trials"]["PENDING"] == 1
    assert payload["total"] == 5


def test_trial_events_write_at_most_once_per_gap(tmp_path, monkeypatch):
    import search.state.status_file as status_file

    now = [100.0]
    monkeypatch.setattr(status_file.time, "monotonic", lambda: now[0])
    callback = StatusFileCallback(
        str(tmp_path), metric="robust_acc", mode="max", total=3, run="run-000"
    )
    writes: list[dict] = []
    original = status_file.storage.write_text

    def counted(fs, path, text):
        writes.append(json.loads(text))
        return original(fs, path, text)

    monkeypatch.setattr(status_file.storage, "write_text", counted)
    trials = [_Trial(t, "RUNNING", None) for t in "abc"]
    for trial in trials:  # three starts inside one gap: one write, the rest pending
        callback.on_trial_start(0, trials, trial)
    assert len(writes) == 1
    callback.on_step_end(0, trials)  # still inside the gap
    assert len(writes) == 1
    now[0] += callback.min_gap_s
    callback.on_step_end(0, trials)  # the pending events, written after the gap
    assert len(writes) == 2 and writes[-1]["trials"]["RUNNING"] == 3
    callback.on_step_end(0, trials)  # nothing pending, inside every_s
    assert len(writes) == 2
    now[0] += callback.min_gap_s
    callback.on_trial_complete(0, trials, trials[0])  # an event after the gap: at once
    assert len(writes) == 3 and writes[-1]["trials"]["TERMINATED"] == 1
    callback.on_experiment_end(trials)  # the last word is always written
    assert len(writes) == 4 and writes[-1]["state"] == "interrupted"
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "interrupted"
