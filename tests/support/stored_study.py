"""The Optuna study of an experiment on object storage, read from the bucket alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from search.run.study import open_storage


def study_from_bucket(fs: Any, root: str, scratch: Path) -> optuna.Study:
    """The one study in EXPERIMENT/optuna/journal.log at `root` on `fs` (copied to `scratch`:
    Optuna reads a journal from a file)."""
    journal = scratch / "journal.log"
    with fs.open_input_stream(f"{root}/optuna/journal.log") as handle:
        journal.write_bytes(handle.read())
    storage = open_storage(journal)
    (name,) = optuna.get_all_study_names(storage)  # named after the experiment
    return optuna.load_study(study_name=name, storage=storage)
