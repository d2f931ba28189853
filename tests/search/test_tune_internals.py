"""The Ray/Optuna private members robprune relies on: present in the installed versions, and a
missing one fails at construction with one line naming it and the tested versions."""

from __future__ import annotations

import optuna
import pytest
import ray

from search.run import tune_internals
from search.run.tune_internals import TESTED_WITH, InternalsMissing, StudySearch


def test_the_installed_ray_and_optuna_are_the_tested_ones():
    assert (ray.__version__, optuna.__version__) == (TESTED_WITH["ray"], TESTED_WITH["optuna"])
    tune_internals.check_tune_internals()  # every member is there


def test_a_missing_member_is_one_line_naming_it(tmp_path):
    class Renamed(StudySearch):
        """As if Ray renamed OptunaSearch._ot_trials."""

        def __getattribute__(self, name):
            if name == "_ot_trials":
                raise AttributeError(name)
            return super().__getattribute__(name)

    with pytest.raises(InternalsMissing) as info:
        Renamed(
            lambda trial: {"x": trial.suggest_float("x", 0, 1)},
            metric="m",
            mode="max",
            sampler=optuna.samplers.RandomSampler(seed=0),
            study_name="s",
            journal=tmp_path / "j.log",
        )
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("ray.tune OptunaSearch._ot_trials is missing")
    assert f"ray {TESTED_WITH['ray']} and optuna {TESTED_WITH['optuna']}" in message
