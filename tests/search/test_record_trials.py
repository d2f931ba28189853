"""The export's trials from their folders: a folder of a trial Tune's snapshot knows is never a
row of its own, also when Tune gave that trial a suffixed folder (its name was taken)."""

from __future__ import annotations

import json

import pyarrow.fs as pafs

from search.results.records import record_trials
from search.state.trial_files import END_MARKER, FINAL_DIR, RESULT_FILE


def _finished(folder, trial: str) -> None:
    final = folder / trial / "checkpoint_000001" / FINAL_DIR
    final.mkdir(parents=True)
    (final / RESULT_FILE).write_text(json.dumps({"config": {"x": 1}, "epochs": []}))
    (folder / trial / "params.json").write_text(json.dumps({"trial": {"x": 1}}))
    (folder / trial / END_MARKER).write_text(json.dumps({"status": "TERMINATED"}))


def test_a_known_trials_suffixed_folder_is_not_a_second_row(tmp_path):
    for trial in ("trial_g_00019", "trial_g_00019_3c62", "trial_g_00020"):
        _finished(tmp_path, trial)
    fs = pafs.LocalFileSystem()
    # the snapshot knows g_00019, in the suffixed folder Tune gave it on resume
    found = record_trials(fs, str(tmp_path), {"g_00019"}, {"trial_g_00019_3c62"})
    assert [t.trial_id for t in found] == ["g_00020"]
    assert len(record_trials(fs, str(tmp_path), {"g_00019"})) == 2  # without the folders
