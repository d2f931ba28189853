"""One experiment's directory, on a local path or any URI pyarrow understands (s3://, gs://).

Layout (EXPERIMENT = STORAGE/NAME):

    EXPERIMENT/experiment.json   what ran: mode, Optuna study name, Tune runs and their state
    EXPERIMENT/spec.yaml         the resolved spec (overrides applied, name and storage set)
    EXPERIMENT/optuna/journal.log the Optuna study (journal file): optuna-dashboard opens it
    EXPERIMENT/dense/            dense models and MRS scores shared by all trials (cache_dir)
    EXPERIMENT/tune/RUN/         Ray Tune's storage, one RUN per `search` or `--extend`
    EXPERIMENT/results/          trials/epochs/layers.parquet and tensorboard/

On remote storage the driver keeps working copies of optuna/ and dense/ on local disk (Optuna
needs a file to lock, trials need files to load) and uploads them; Tune writes to the URI itself.

What the rest of search/ reads of an experiment (its name, mode, working copy, journal, runs)
are plain attributes, set once when it is created or opened; this module is entered only to
create or open one and to record a run's state. Its files are read and written through
`search.state.storage`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import robprune
from robprune.errors import BadInput
from search.state import storage as files
from search.state.storage import join, resolve_location

__all__ = ["Experiment", "Segment"]

STATE_FILE = "experiment.json"
SPEC_FILE = "spec.yaml"
JOURNAL_FILE = "journal.log"
#: The study name of experiments made before a study was named after its experiment.
STUDY_NAME = "robprune"
_FORMAT = "robprune.experiment/1"
#: The layout version of an experiment directory, in its own file: a robprune that finds a
#: larger number than it knows refuses to touch the experiment.
FORMAT_FILE = "FORMAT_VERSION"
FORMAT_VERSION = 1


@dataclass
class Segment:
    """One Tune run inside the experiment: the first search, then one per `--extend`."""

    name: str
    num_samples: int | None
    status: str  # running | finished | interrupted
    tune_started: bool = True  # Tune wrote (or was about to write) EXPERIMENT/tune/NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_samples": self.num_samples,
            "status": self.status,
            "tune_started": self.tune_started,
        }


class Experiment:
    """The experiment directory and its small state file (experiment.json)."""

    def __init__(self, location: str):
        self.location = resolve_location(location)
        self.fs, self.fs_path = files.filesystem(self.location)
        self.remote = files.is_remote(self.location)
        self.tune_location = join(self.location, "tune")  # Tune's runs (a path or a URI)
        self.state: dict[str, Any] = {}
        self._adopt({})

    def _adopt(self, state: dict[str, Any]) -> None:
        """Take `state` as the experiment's, and the attributes read from it."""
        self.state = state
        self.name = str(state.get("name", ""))
        self.mode = str(state.get("mode", ""))
        self.study_name = str(state.get("study_name", STUDY_NAME))
        self.segments = [Segment(**s) for s in state.get("segments", [])]
        #: local directory holding what must be a real file (the Optuna journal, dense cache)
        self.work_dir = Path(self.location) if not self.remote else self._remote_work_dir()
        self.journal_path = self.work_dir / "optuna" / JOURNAL_FILE
        #: the trials' `cache_dir`: the shared dense models (local, or a working copy)
        self.dense_dir = self.work_dir / "dense"

    def _remote_work_dir(self) -> Path:
        root = Path(os.environ.get("ROBPRUNE_WORK_DIR", "~/.cache/robprune/experiments"))
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        return root.expanduser() / f"{self.name}-{digest}"

    # ------------------------------------------------------------------ opening
    @classmethod
    def check_new(cls, storage: str, name: str) -> Experiment:
        """The experiment to create; refuses an existing one (a second Tune run would mix in).

        A directory holding only what `create` writes before experiment.json (a search killed
        while creating it) is not an experiment yet: it is created again.
        """
        exp = cls(join(resolve_location(storage), name))
        if exp.exists():
            raise BadInput(
                f"experiment {exp.location} already exists: use `robprune resume "
                f"{exp.location}` (or --resume) or another --name"
            )
        return exp

    def exists(self) -> bool:
        """Whether the location holds an experiment (anything beyond a killed `create`)."""
        try:
            if not files.exists(self.fs, self.fs_path):
                return False
            names = {
                i.base_name
                for i in files.listing(self.fs, self.fs_path)
                if not i.base_name.startswith(".")  # a temporary file of an atomic write
            }
        except OSError as exc:
            raise BadInput(f"storage {self.location}: {exc}") from None
        return not names <= {FORMAT_FILE, SPEC_FILE}

    @classmethod
    def create(
        cls,
        storage: str,
        name: str,
        *,
        mode: str,
        spec_yaml: str,
        first_run: bool = False,
        num_samples: int | None = None,
    ) -> Experiment:
        """Make the experiment's directory and its state file; with `first_run`, the state
        holds its first Tune run (of `num_samples` trials, None for a grid) already."""
        exp = cls.check_new(storage, name)
        exp.fs.create_dir(exp.fs_path, recursive=True)
        runs = [Segment("run-000", num_samples, "running", False).to_dict()] if first_run else []
        exp._adopt(
            {
                "format": _FORMAT,
                "name": name,
                "mode": mode,
                "study_name": name,  # optuna-dashboard lists the study by this name
                "robprune_version": robprune.__version__,
                "segments": runs,
            }
        )
        exp._write(FORMAT_FILE, f"{FORMAT_VERSION}\n")
        exp._write(SPEC_FILE, spec_yaml)
        exp.save_state()
        return exp

    @classmethod
    def open(cls, location: str) -> Experiment:
        exp = cls(location)
        try:
            text = exp.read_text(STATE_FILE)
        except FileNotFoundError:
            raise BadInput(
                f"{exp.location} is not a robprune experiment (no {STATE_FILE})"
            ) from None
        try:
            state = json.loads(text)
        except json.JSONDecodeError:
            raise BadInput(f"{join(exp.location, STATE_FILE)} is not valid JSON") from None
        exp._check_format(state)
        if state.get("format") != _FORMAT:
            raise BadInput(f"{join(exp.location, STATE_FILE)}: not a robprune experiment")
        exp._adopt(state)
        return exp

    def _check_format(self, state: dict[str, Any]) -> None:
        """An experiment written by a newer robprune is left alone (exit 2, nothing changed)."""
        try:
            text = self.read_text(FORMAT_FILE).strip()
        except FileNotFoundError:
            text = "1"  # written before the file existed
        fmt = str(state.get("format", ""))
        found = text if text.isdigit() else "?"
        if fmt.startswith("robprune.experiment/") and fmt.rpartition("/")[2].isdigit():
            found = str(max(int(found) if found.isdigit() else 0, int(fmt.rpartition("/")[2])))
        if not found.isdigit() or int(found) > FORMAT_VERSION:
            raise BadInput(
                f"{join(self.location, FORMAT_FILE)}: experiment format {text!r} was written by "
                f"a newer robprune (this robprune {robprune.__version__} reads format "
                f"{FORMAT_VERSION}); upgrade robprune to resume it"
            )

    # ------------------------------------------------------------------ its runs
    def add_segment(self, num_samples: int | None) -> Segment:
        segment = Segment(f"run-{len(self.segments):03d}", num_samples, "running", False)
        self.state["segments"] = [*self.state.get("segments", []), segment.to_dict()]
        self.save_state()
        return segment

    def set_segment_status(self, name: str, status: str) -> None:
        """Record a run's state; from now on Tune's directory of the run should exist."""
        for seg in self.state["segments"]:
            if seg["name"] == name:
                seg["status"] = status
                seg["tune_started"] = True
        self.save_state()

    def save_state(self) -> None:
        self._write(STATE_FILE, json.dumps(self.state, indent=2, sort_keys=True) + "\n")
        self._adopt(self.state)

    # ------------------------------------------------------------------ its files
    def path(self, *parts: str) -> str:
        return join(self.location, *parts)

    def read_text(self, rel: str) -> str:
        """EXPERIMENT/rel; FileNotFoundError when it is not there."""
        return files.read_text(self.fs, f"{self.fs_path}/{rel}")

    def _write(self, rel: str, text: str) -> None:
        files.write_text(self.fs, f"{self.fs_path}/{rel}", text)

    def read_spec_yaml(self) -> str:
        return self.read_text(SPEC_FILE)
