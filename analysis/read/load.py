"""Read the results tables (docs/results.md) from one or many experiments, schema-checked.

Only what the analysis needs is required of the trials table: `status` and the response.
Every other column (factors, other metrics, identifiers) may be absent, as in a table written by
an earlier robprune or assembled by hand from another tool; an absent column reads as not
recorded (null) and `ResultSet.absent` lists it so the report can say so. Columns that are
present must have the schema's type. Everything the user can get wrong here (a wrong path, a
missing or mistyped column, a table with no usable trial) becomes one `BadInput` line that
names the file and the columns, never a traceback. Failed trials are kept aside and counted,
because the report must say how many of the design's trials are missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.read.provenance import adaptive_samplers, describe_attacks
from robprune.config.factors import FACTOR_COLUMNS
from robprune.errors import BadInput
from robprune.io.results_schema import (
    EPOCHS_SCHEMA,
    LAYERS_SCHEMA,
    METRIC_COLUMNS,
    SCHEMAS,
    TRIALS_SCHEMA,
    rename_legacy,
)

__all__ = [
    "OK_STATUS",
    "ResultSet",
    "Source",
    "check_response",
    "check_schema",
    "load_results",
    "resolve_sources",
    "usable_for",
]

#: Ray Tune's status of a trial that finished normally; every other status is excluded.
OK_STATUS = "TERMINATED"
#: Trials-table columns the analysis cannot do without (besides the response).
REQUIRED = ("status",)

# Columns read only for provenance, from each source's first row group
# (`analysis.read.provenance`): skipping them keeps 100,000-row tables fast to load.
_UNUSED = frozenset({"config_json", "attack_config_json"})


@dataclass(frozen=True, kw_only=True)
class Source:
    """One experiment's result files; epochs/layers are optional (figures are skipped)."""

    trials: Path
    epochs: Path | None
    layers: Path | None
    experiment_dir: Path | None  # parent of results/, where optuna/ may live


@dataclass(kw_only=True)
class ResultSet:
    """All trials merged, plus what was excluded and why, and which columns were absent."""

    trials: pd.DataFrame  # every row, all statuses
    ok: pd.DataFrame  # status == TERMINATED
    epochs: pd.DataFrame | None
    layers: pd.DataFrame | None
    sources: list[Source]
    excluded: dict[str, int] = field(default_factory=dict)  # status -> count
    top_errors: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: trials-table column -> number of sources whose table lacks it (read as null)
    absent: dict[str, int] = field(default_factory=dict)
    #: the primary attack of each source, described once here (`analysis.read.provenance`)
    attacks: list[str] = field(default_factory=list)
    #: adaptive samplers named by the experiments' spec.yaml (`analysis.read.provenance`)
    samplers: tuple[str, ...] = ()

    def recorded(self, column: str) -> bool:
        """Whether any source's trials table has `column`."""
        return self.absent.get(column, 0) < len(self.sources)


def resolve_sources(paths: list[str | Path]) -> list[Source]:
    """Turn each argument (results dir, experiment dir, or trials.parquet) into a `Source`."""
    if not paths:
        raise BadInput("no results given: pass one or more result directories or Parquet files")
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if (path / "trials.parquet").is_file():
                trials = path / "trials.parquet"
            elif (path / "results" / "trials.parquet").is_file():
                trials = path / "results" / "trials.parquet"
            else:
                raise BadInput(f"{path}: no trials.parquet in this directory (or in results/)")
        elif path.is_file():
            if path.suffix != ".parquet":
                raise BadInput(f"{path}: not a Parquet file (expected trials.parquet)")
            trials = path
        else:
            raise BadInput(f"{path}: no such file or directory")
        folder = trials.parent
        siblings = trials.name == "trials.parquet"
        epochs = folder / "epochs.parquet" if siblings else None
        layers = folder / "layers.parquet" if siblings else None
        sources.append(
            Source(
                trials=trials,
                epochs=epochs if epochs is not None and epochs.is_file() else None,
                layers=layers if layers is not None and layers.is_file() else None,
                experiment_dir=folder.parent if folder.name == "results" else folder,
            )
        )
    return sources


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Lenient where nothing is lost (int for float, all-null, dictionary strings)."""
    if pa.types.is_null(actual):
        return True
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_string(expected):
        return (
            pa.types.is_string(actual)
            or pa.types.is_large_string(actual)
            or (pa.types.is_string_view(actual))
        )
    if pa.types.is_floating(expected) or pa.types.is_integer(expected):
        return pa.types.is_integer(actual) or pa.types.is_floating(actual)
    return actual.equals(expected)


def _describe(dtype: pa.DataType) -> str:
    """Arrow type in plain words: every string flavour is just 'string'."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    return str(dtype)


def check_schema(
    schema: pa.Schema,
    expected: pa.Schema,
    where: str,
    required: Sequence[str] | None = None,
) -> list[str]:
    """Raise one `BadInput` naming every missing required and every mistyped column.

    `required` None means every column of `expected`; returns the optional columns absent.
    """
    needed = expected.names if required is None else list(required)
    missing = [f.name for f in expected if f.name in needed and f.name not in schema.names]
    missing += [name for name in needed if name not in expected.names and name not in missing]
    wrong = []
    for f in expected:
        if f.name in schema.names:
            actual = schema.field(f.name).type
            if not _compatible(actual, f.type):
                wrong.append(f"{f.name} is {_describe(actual)} (expected {f.type})")
    problems = []
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if wrong:
        problems.append("wrong types: " + "; ".join(wrong))
    if problems:
        raise BadInput(f"{where}: " + "; ".join(problems))
    return [f.name for f in expected if f.name not in schema.names]


def _read(
    path: Path,
    expected: pa.Schema,
    skip: frozenset[str] = frozenset(),
    required: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The table with `expected`'s columns (absent optional ones null) and those absent."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt or foreign file
        raise BadInput(f"{path}: not a readable Parquet file ({exc})") from exc
    table = next((name for name, known in SCHEMAS.items() if known is expected), "")
    legacy = rename_legacy(table, schema.names)  # an earlier robprune's names: {old: new}
    schema = pa.schema([f.with_name(legacy.get(f.name, f.name)) for f in schema])
    absent = check_schema(schema, expected, str(path), required)
    columns = [f.name for f in expected if f.name not in skip and f.name not in absent]
    stored = {new: old for old, new in legacy.items()}
    frame = pq.read_table(path, columns=[stored.get(c, c) for c in columns]).to_pandas()
    frame = frame.rename(columns=legacy)
    for f in expected:  # numbers as float so merged tables agree (ints may hold nulls)
        if f.name in skip:
            continue
        switch = pa.types.is_boolean(f.type) and f.name in FACTOR_COLUMNS
        if f.name in absent:
            frame[f.name] = None if pa.types.is_string(f.type) or switch else np.nan
        elif switch:  # a factor that is a switch reads as its spelling in the spec
            frame[f.name] = frame[f.name].map({True: "true", False: "false"})
        elif not pa.types.is_string(f.type):
            frame[f.name] = frame[f.name].astype(float)
        elif not pd.api.types.is_string_dtype(frame[f.name].dtype):
            frame[f.name] = frame[f.name].astype("str")  # an all-null column reads as object
    return frame[[f.name for f in expected if f.name not in skip]], absent


def _read_trials(source: Source, required: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    frame, absent = _read(source.trials, TRIALS_SCHEMA, _UNUSED, required)
    if "experiment" in absent:  # a hand-assembled table: name it after its folder
        frame["experiment"] = source.experiment_dir.name if source.experiment_dir else "results"
    if "trial_id" in absent:
        frame["trial_id"] = [f"row{i}" for i in range(len(frame))]
    return frame, absent


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    frames = [f for f in frames if f is not None]
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def load_results(paths: list[str | Path], response: str = "robust_acc") -> ResultSet:
    """Load and merge every source; keep completed trials apart from failed ones.

    Each trials table must have `status` and the `response`; other columns are optional.
    """
    sources = resolve_sources(paths)
    read = [_read_trials(s, (*REQUIRED, response)) for s in sources]
    trials = _concat([frame for frame, _ in read])
    absent = dict(Counter(name for _, names in read for name in names))
    epochs = _concat([_read(s.epochs, EPOCHS_SCHEMA)[0] for s in sources if s.epochs])
    layers = _concat([_read(s.layers, LAYERS_SCHEMA)[0] for s in sources if s.layers])
    where = ", ".join(str(s.trials) for s in sources)
    if trials is None or len(trials) == 0:
        raise BadInput(f"{where}: the trials table is empty (no trials to analyse)")
    notes: list[str] = []
    before = len(trials)
    trials = trials.drop_duplicates(subset=["experiment", "trial_id"], keep="last")
    if len(trials) < before:
        notes.append(
            f"{before - len(trials)} duplicate trial rows (same experiment and trial_id, e.g. "
            "the same file given twice) were counted once."
        )
    if "repeat_of" in trials.columns:  # search.dedupe: the original's numbers, not new data
        repeats = trials["repeat_of"].notna()
        if repeats.any():
            notes.append(
                f"{int(repeats.sum())} trials repeated an earlier configuration and were "
                "answered from it (search.dedupe); each configuration is counted once."
            )
            trials = trials.loc[~repeats]
    trials = trials.reset_index(drop=True)
    status = trials["status"].fillna("UNKNOWN")
    ok_mask = (status == OK_STATUS).to_numpy()
    excluded = dict(Counter(status[~ok_mask]).most_common())
    errors = trials.loc[~ok_mask, "error"].dropna().astype(str).str.strip()
    last_lines = [e.splitlines()[-1][:120] for e in errors if e]
    if not ok_mask.any():
        counts = ", ".join(f"{k} {v}" for k, v in excluded.items())
        raise BadInput(
            f"{where}: all {len(trials)} trials failed or did not finish ({counts}); "
            "nothing to analyse"
        )
    return ResultSet(
        trials=trials,
        epochs=epochs,
        ok=trials.loc[ok_mask].reset_index(drop=True),
        layers=layers,
        sources=sources,
        excluded=excluded,
        top_errors=Counter(last_lines).most_common(3),
        notes=notes,
        absent=absent,
        attacks=describe_attacks([s.trials for s in sources]),
        samplers=adaptive_samplers([s.experiment_dir for s in sources]),
    )


def usable_for(ok: pd.DataFrame, response: str) -> tuple[pd.DataFrame, int]:
    """Completed trials whose `response` is a finite number, and how many were not."""
    values = ok[response].to_numpy(dtype=float)
    finite = np.isfinite(values)
    return ok.loc[finite].reset_index(drop=True), int((~finite).sum())


def check_response(response: str) -> None:
    """The response must be one of the numeric metric columns of the trials table."""
    if response not in METRIC_COLUMNS:
        raise BadInput(
            f"--response {response!r} is not a metric column; choose one of: "
            + ", ".join(METRIC_COLUMNS)
        )
