"""A grid search's Optuna study: each finished grid trial recorded with its values.

Optimize and random searches ask their study for every trial (`search.run.tune_internals`);
a grid asks nothing, so this callback writes each trial into the same kind of study when Tune
ends it: its grid parameters (categorical over the grid's options), its validation objective
values (COMPLETE) or its failure (FAIL), and the Tune trial and run it came from. Then
`optuna-dashboard EXPERIMENT/optuna/journal.log` opens a grid like any other experiment.
Nothing in the search reads a grid's study back: it is a record for people and tools.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import optuna
from ray import tune

from search.results.export import error_message  # the export's one-line error
from search.run.study import FAIL_REASON_ATTR, RUN_ATTR, TUNE_TRIAL_ATTR, open_storage
from search.spec.model import Spec
from search.spec.paths import get_path
from search.state.experiment import Experiment

__all__ = ["GridStudyCallback", "grid_distributions"]

log = logging.getLogger(__name__)


def _optuna_value(value: Any) -> Any:
    """A choice as Optuna stores a categorical option (scalars as they are, else JSON)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


def grid_distributions(spec: Spec) -> dict[str, list[Any]]:
    """Parameter name (the key path, as optimize searches name them) -> the grid's options;
    the seed too when `search.seeds` replicates each cell."""
    options = {d.path: [_optuna_value(v) for v in d.args] for d in spec.dists}
    if spec.search.seeds > 1 and "seed" not in options:
        base = int(spec.fixed_value("seed") or 0)
        options["seed"] = [base + r for r in range(spec.search.seeds)]
    return options


def _why(trial: Any) -> str:
    try:
        return error_message(trial) or "the trial failed"
    except Exception:  # noqa: BLE001 - a record, never a failure of the search
        return "the trial failed"


class GridStudyCallback(tune.Callback):
    """Records each grid trial in the experiment's study the moment Tune ends it."""

    def __init__(self, location: str, run: str, spec: Spec):
        self.location = location
        self.run = run
        self.options = grid_distributions(spec)
        self.objectives = [(o.metric, o.mode) for o in spec.search.objectives]
        self._study: optuna.Study | None = None
        self._recorded: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_recorded": set()}  # reopened after a restore

    def _open(self) -> optuna.Study:
        if self._study is None:
            exp = Experiment.open(self.location)  # its state names the journal's working copy
            self._study = optuna.create_study(
                study_name=exp.study_name,
                storage=open_storage(exp.journal_path),
                directions=["maximize" if m == "max" else "minimize" for _, m in self.objectives],
                load_if_exists=True,
            )
            self._recorded = {
                t.user_attrs.get(TUNE_TRIAL_ATTR) for t in self._study.get_trials(deepcopy=False)
            }
        return self._study

    def _record(self, trial: Any, failed: bool) -> None:
        try:
            study = self._open()
            if trial.trial_id in self._recorded:
                return  # recorded before a restore: once only
            config = trial.config.get("trial", {})
            params, dists = {}, {}
            for name, choices in self.options.items():
                value = _optuna_value(get_path(config, name))
                if value in choices:  # absent where a conditional parameter does not apply
                    params[name] = value
                    dists[name] = optuna.distributions.CategoricalDistribution(choices)
            last = trial.last_result or {}
            values = [last.get(metric) for metric, _ in self.objectives]
            complete = not failed and all(
                isinstance(v, int | float) and math.isfinite(v) for v in values
            )
            attrs = {TUNE_TRIAL_ATTR: trial.trial_id, RUN_ATTR: self.run}
            if not complete:
                attrs[FAIL_REASON_ATTR] = _why(trial) if failed else "no objective value"
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=[float(v) for v in values] if complete else None,
                    state=optuna.trial.TrialState.COMPLETE
                    if complete
                    else optuna.trial.TrialState.FAIL,
                    user_attrs=attrs,
                )
            )
            self._recorded.add(trial.trial_id)
        except Exception as exc:  # noqa: BLE001 - the study is a record: never fail the search
            log.warning("grid trial %s not recorded in the Optuna study: %s", trial.trial_id, exc)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, failed=True)
