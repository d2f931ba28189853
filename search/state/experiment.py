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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

import robprune
from robprune.errors import BadInput
from robprune.io.atomic import atomic_write_text

__all__ = ["Experiment", "Segment", "resolve_location", "is_remote", "join", "parent", "basename"]

STATE_FILE = "experiment.json"
SPEC_FILE = "spec.yaml"
JOURNAL_FILE = "journal.log"
STUDY_NAME = "robprune"
_FORMAT = "robprune.experiment/1"
#: The layout version of an experiment directory, in its own file: a robprune that finds a
#: larger number than it knows refuses to touch the experiment.
FORMAT_FILE = "FORMAT_VERSION"
FORMAT_VERSION = 1


def is_remote(location: str) -> bool:
    """A URI with a scheme other than file:// is remote."""
    return "://" in location and not location.startswith("file://")


def resolve_location(location: str) -> str:
    """Local paths become absolute; URIs are kept as given (without a trailing slash)."""
    if location.startswith("file://"):
        return str(Path(location[len("file://") :]).expanduser().resolve())
    if is_remote(location):
        base, sep, query = location.partition("?")
        return base.rstrip("/") + sep + query
    return str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """Path join that keeps a URI's query (s3://b/p?endpoint_override=... stays valid)."""
    if not is_remote(location):
        return str(Path(location, *parts))
    base, sep, query = location.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def parent(location: str) -> str:
    if not is_remote(location):
        return str(Path(location).parent)
    base, sep, query = location.partition("?")
    return base.rstrip("/").rsplit("/", 1)[0] + sep + query


def basename(location: str) -> str:
    return location.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]


def _filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    if is_remote(location):
        try:
            return pafs.FileSystem.from_uri(location)
        except (pafs.ArrowInvalid, ValueError, OSError) as exc:  # type: ignore[attr-defined]
            raise BadInput(f"storage {location!r}: {exc}") from None
    return pafs.LocalFileSystem(), location


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
        self.fs, self.fs_path = _filesystem(self.location)
        self.state: dict[str, Any] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def check_new(cls, storage: str, name: str) -> Experiment:
        """The experiment to create; refuses an existing one (a second Tune run would mix in)."""
        exp = cls(join(resolve_location(storage), name))
        try:
            info = exp.fs.get_file_info(exp.fs_path)
        except OSError as exc:
            raise BadInput(f"storage {exp.location}: {exc}") from None
        if info.type != pafs.FileType.NotFound:
            raise BadInput(
                f"experiment {exp.location} already exists: use `robprune resume "
                f"{exp.location}` or another --name"
            )
        return exp

    @classmethod
    def create(cls, storage: str, name: str, *, mode: str, spec_yaml: str) -> Experiment:
        """Make the experiment's directory and its state file."""
        exp = cls.check_new(storage, name)
        exp.fs.create_dir(exp.fs_path, recursive=True)
        exp.state = {
            "format": _FORMAT,
            "name": name,
            "mode": mode,
            "study_name": STUDY_NAME,
            "robprune_version": robprune.__version__,
            "segments": [],
        }
        exp.write_text(FORMAT_FILE, f"{FORMAT_VERSION}\n")
        exp.write_text(SPEC_FILE, spec_yaml)
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
            exp.state = json.loads(text)
        except json.JSONDecodeError:
            raise BadInput(f"{join(exp.location, STATE_FILE)} is not valid JSON") from None
        exp._check_format()
        if exp.state.get("format") != _FORMAT:
            raise BadInput(f"{join(exp.location, STATE_FILE)}: not a robprune experiment")
        return exp

    def _check_format(self) -> None:
        """An experiment written by a newer robprune is left alone (exit 2, nothing changed)."""
        try:
            text = self.read_text(FORMAT_FILE).strip()
        except FileNotFoundError:
            text = "1"  # written before the file existed
        fmt = str(self.state.get("format", ""))
        found = text if text.isdigit() else "?"
        if fmt.startswith("robprune.experiment/") and fmt.rpartition("/")[2].isdigit():
            found = str(max(int(found) if found.isdigit() else 0, int(fmt.rpartition("/")[2])))
        if not found.isdigit() or int(found) > FORMAT_VERSION:
            raise BadInput(
                f"{join(self.location, FORMAT_FILE)}: experiment format {text!r} was written by "
                f"a newer robprune (this robprune {robprune.__version__} reads format "
                f"{FORMAT_VERSION}); upgrade robprune to resume it"
            )

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return str(self.state["name"])

    @property
    def mode(self) -> str:
        return str(self.state["mode"])

    @property
    def study_name(self) -> str:
        return str(self.state.get("study_name", STUDY_NAME))

    @property
    def remote(self) -> bool:
        return is_remote(self.location)

    @property
    def tune_location(self) -> str:
        """Where Ray Tune keeps its runs (a local path or a URI)."""
        return join(self.location, "tune")

    def tune_storage(self, run: str | None = None) -> tuple[str, pafs.FileSystem | None]:
        """(path, filesystem) for Tune: remote runs get pyarrow's filesystem object, which
        keeps options such as an S3 endpoint that a path string would lose."""
        if not self.remote:
            return (join(self.tune_location, run) if run else self.tune_location), None
        path = f"{self.fs_path}/tune" + (f"/{run}" if run else "")
        return path, self.fs

    @property
    def segments(self) -> list[Segment]:
        return [Segment(**s) for s in self.state.get("segments", [])]

    def add_segment(self, num_samples: int | None) -> Segment:
        segment = Segment(f"run-{len(self.segments):03d}", num_samples, "running", False)
        self.state["segments"] = [*self.state.get("segments", []), segment.to_dict()]
        self.save_state()
        return segment

    def set_segment_status(self, name: str, status: str, *, tune_started: bool = True) -> None:
        """Record a run's state; `tune_started` says that Tune's directory should exist."""
        for seg in self.state["segments"]:
            if seg["name"] == name:
                seg["status"] = status
                seg["tune_started"] = seg.get("tune_started", True) or tune_started
        self.save_state()

    def path(self, *parts: str) -> str:
        return join(self.location, *parts)

    # ------------------------------------------------------------------ local working copies
    def work_dir(self) -> Path:
        """Local directory holding what must be a real file (the Optuna journal, dense cache)."""
        if not self.remote:
            return Path(self.location)
        root = Path(os.environ.get("ROBPRUNE_WORK_DIR", "~/.cache/robprune/experiments"))
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        return root.expanduser() / f"{self.name}-{digest}"

    @property
    def journal_path(self) -> Path:
        return self.work_dir() / "optuna" / JOURNAL_FILE

    @property
    def dense_dir(self) -> Path:
        """The trials' `cache_dir`: the shared dense models (local, or a working copy)."""
        return self.work_dir() / "dense"

    def pull(self, sub: str) -> None:
        """Remote experiments: copy EXPERIMENT/sub into the local working copy."""
        if not self.remote:
            return
        src = f"{self.fs_path}/{sub}"
        if self.fs.get_file_info(src).type == pafs.FileType.NotFound:
            return
        dst = self.work_dir() / sub
        dst.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(
            src, str(dst), source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem()
        )

    def push(self, sub: str) -> None:
        """Remote experiments: upload the local working copy of EXPERIMENT/sub."""
        if not self.remote:
            return
        src = self.work_dir() / sub
        if not src.exists():
            return
        pafs.copy_files(
            str(src),
            f"{self.fs_path}/{sub}",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.fs,
        )

    # ------------------------------------------------------------------ small files
    def read_text(self, rel: str) -> str:
        path = f"{self.fs_path}/{rel}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            raise FileNotFoundError(path)
        with self.fs.open_input_stream(path) as handle:
            return handle.read().decode()

    def write_text(self, rel: str, text: str) -> None:
        """Atomic on a local disk (temporary file, rename); one PUT on object stores."""
        if not self.remote:
            atomic_write_text(text, Path(self.fs_path, rel))
            return
        with self.fs.open_output_stream(f"{self.fs_path}/{rel}") as handle:
            handle.write(text.encode())

    def save_state(self) -> None:
        self.write_text(STATE_FILE, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def read_spec_yaml(self) -> str:
        return self.read_text(SPEC_FILE)

    def replace_results_dir(self, local_dir: Path) -> str:
        """Publish a freshly exported results/ directory (local rename, or upload)."""
        target = self.path("results")
        if not self.remote:
            final = Path(target)
            final.mkdir(parents=True, exist_ok=True)
            for item in sorted(local_dir.iterdir()):
                dest = final / item.name
                if item.is_dir():
                    if dest.exists():
                        shutil.rmtree(dest)
                    os.replace(item, dest)
                else:
                    os.replace(item, dest)  # atomic per file
            return target
        results = f"{self.fs_path}/results"
        if self.fs.get_file_info(f"{results}/tensorboard").type != pafs.FileType.NotFound:
            self.fs.delete_dir(f"{results}/tensorboard")
        pafs.copy_files(
            str(local_dir),
            results,
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.fs,
        )
        return target
