"""Optuna's PED-ANOVA importances, as a cross-check beside the Shapley shares.

The search keeps its study at EXPERIMENT/optuna/study.db (SQLite) or
EXPERIMENT/optuna/journal.log (journal file). Optuna is imported only when one exists, so a
report on a grid never pays for it. PED-ANOVA answers a different question (which parameters
matter for reaching the top 10% of trials), so agreement in ranking, not in numbers, is what
to look for.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import pandas as pd

from analysis.read.load import Source
from robprune.config.factors import FACTOR_COLUMNS, factor_for_path

__all__ = ["find_storages", "ped_anova", "factor_of"]


def factor_of(param: str) -> str:
    """The trials-table column of an Optuna parameter (its config key path, as the search
    names it, e.g. 'finetune.method'); '' for parameters that are not factors (the dense
    model's recipe, MRS estimator settings)."""
    path = param.replace("/", ".").removeprefix("trial.")
    spec = factor_for_path(path)
    if spec is not None:
        return spec.column
    return path if path in FACTOR_COLUMNS else ""


def find_storages(sources: list[Source]) -> list[tuple[str, str]]:
    """(experiment dir, storage description) for every experiment with an Optuna study."""
    found = []
    seen: set[Path] = set()
    for source in sources:
        root = source.experiment_dir
        if root is None or root in seen:
            continue
        seen.add(root)
        if (root / "optuna" / "study.db").is_file():
            found.append((str(root), f"sqlite:///{(root / 'optuna' / 'study.db').resolve()}"))
        elif (root / "optuna" / "journal.log").is_file():
            found.append((str(root), f"journal:{(root / 'optuna' / 'journal.log').resolve()}"))
    return found


def _optuna() -> ModuleType:
    """Optuna, quiet, loaded only where a study exists: a report without one loads none."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(description: str):
    if description.startswith("journal:"):
        optuna = _optuna()
        journal = optuna.storages.journal.JournalFileBackend(description.removeprefix("journal:"))
        return optuna.storages.JournalStorage(journal)
    return description


def ped_anova(sources: list[Source], response: str) -> tuple[pd.DataFrame, list[str]] | None:
    """Importances per study and parameter; None when no experiment has a study."""
    storages = find_storages(sources)
    if not storages:
        return None
    optuna = _optuna()
    rows: list[dict] = []
    notes: list[str] = []
    for root, description in storages:
        try:
            storage = _storage(description)
            names = optuna.get_all_study_names(storage=storage)
        except Exception as exc:  # a corrupt or foreign file must not sink the report
            notes.append(f"{root}: the Optuna study could not be opened ({exc}).")
            continue
        for name in names:
            try:
                study = optuna.load_study(study_name=name, storage=storage)
                index, note = _objective(study, response)
                if note:
                    notes.append(f"{name}: {note}")
                maximize = study.directions[index] == optuna.study.StudyDirection.MAXIMIZE
                sign = -1.0 if maximize else 1.0
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    values = optuna.importance.get_param_importances(
                        study,
                        evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                        target=lambda t, i=index, s=sign: s * t.values[i],
                    )
            except Exception as exc:  # too few trials, no parameters, ...
                notes.append(f"{name}: PED-ANOVA not computed ({exc}).")
                continue
            # Optuna orders equal importances as a set of names comes out: by name instead
            for param, value in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
                rows.append(
                    {
                        "experiment": root,
                        "study": name,
                        "param": param,
                        "factor": factor_of(param),
                        "importance": float(value),
                    }
                )
    table = pd.DataFrame(rows, columns=["experiment", "study", "param", "factor", "importance"])
    return table, notes


def _objective(study, response: str) -> tuple[int, str]:
    """Index of the objective that is `response`; the first one, with a note, if unknown."""
    names = study.metric_names
    if names and response in names:
        return names.index(response), ""
    if len(study.directions) == 1:
        return 0, ""
    return 0, f"objective names unknown; the first of {len(study.directions)} objectives is used"
