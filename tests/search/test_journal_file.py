"""A torn Optuna journal record (what a full disk or a kill mid-write leaves) is set aside,
and the study reads again (search.state.journal_file); real Optuna, no Ray."""

from __future__ import annotations

import optuna

from search.run.study import open_storage
from search.state.journal_file import TORN_SUFFIX, repair_journal


def _study(path, *, new: bool = False):
    if new:
        return optuna.create_study(study_name="s", storage=open_storage(path))
    return optuna.load_study(study_name="s", storage=open_storage(path))


def test_a_torn_last_record_then_more_appends_still_reads(tmp_path, capsys):
    path = tmp_path / "journal.log"
    study = _study(path, new=True)
    for value in (0.1, 0.2):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, value)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code":4,"worker_id":"w","study_id":0,"dat')  # cut short
    again = _study(path)  # repaired on open: the torn record set aside, with a note
    note = capsys.readouterr().out
    assert "1 torn record(s)" in note and TORN_SUFFIX in note
    assert path.read_bytes() == whole
    assert '"dat' in (tmp_path / f"journal.log{TORN_SUFFIX}").read_text()
    trial = again.ask()
    again.tell(trial, 0.3)
    assert [t.value for t in _study(path).trials] == [0.1, 0.2, 0.3]


def test_a_whole_record_glued_behind_a_torn_one_is_kept(tmp_path):
    path = tmp_path / "journal.log"
    study = _study(path, new=True)
    trial = study.ask()
    study.tell(trial, 0.5)
    lines = path.read_text().splitlines(keepends=True)
    torn = lines[-1][:20]  # the tell cut short, and appended again behind it
    path.write_text("".join(lines[:-1]) + torn + lines[-1])
    assert "1 torn record(s)" in repair_journal(path, full=True)
    assert [t.value for t in _study(path).trials] == [0.5]
    assert repair_journal(path, full=True) is None
