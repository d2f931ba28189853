"""One table of factors (robprune.config.factors), and registries that agree with the config.

The config's allowed values are what a spec is validated against before anything runs; the
registries are what a trial calls. If the two lists drift apart, a spec is either rejected for
a name that works or accepted for one that fails hours later: these tests fail instead.
"""

from __future__ import annotations

import pytest

from robprune import config as cfg
from robprune.config.factors import (
    CONDITIONS,
    FACTOR_COLUMNS,
    FACTORS,
    condition_of,
    factor_for_path,
    factor_values,
    label,
)
from robprune.errors import ConfigError
from robprune.io.results_schema import TRIALS_SCHEMA


def test_criteria_registry_matches_config():
    from robprune.pruning.criteria import CRITERIA

    assert tuple(CRITERIA) == cfg.CRITERIA


def test_ratio_rules_registry_matches_config():
    from robprune.pruning.allocation import RATIO_RULES

    assert tuple(RATIO_RULES) == tuple(cfg.RATIO_RULES)
    assert set(cfg.MRS_RATIO_RULES) <= set(cfg.RATIO_RULES)
    assert cfg.MRS_RATIO_RULES == tuple(n for n, r in RATIO_RULES.items() if r.uses_mrs)
    reads = {
        p: tuple(n for n, r in RATIO_RULES.items() if p in r.parameters)
        for p in ("temperature", "band")
    }
    assert reads == {"temperature": cfg.TEMPERATURE_RULES, "band": cfg.BAND_RULES}
    from robprune.pruning.allocation import BAND_SCALES
    from robprune.pruning.mrs import MRS_ESTIMATORS

    assert BAND_SCALES == cfg.BAND_SCALES
    assert tuple(MRS_ESTIMATORS) == cfg.MRS_ESTIMATORS


def test_a_registry_that_drifts_from_the_names_fails_naming_both_sides():
    from robprune.config.names import check_registry

    check_registry("criterion", ("l1", "l2"), {"l2": None, "l1": None})
    with pytest.raises(
        RuntimeError,
        match=r"listed but not implemented: \['l2'\]; "
        r"implemented but not listed: \['l3'\]",
    ):
        check_registry("criterion", ("l1", "l2"), {"l1": None, "l3": None})


def test_dense_key_reads_exactly_the_dense_prefixes():
    """What the search's space treats as dense (`DENSE_PREFIXES`) is what changes the key."""
    from robprune.io.dense_cache import DENSE_PREFIXES, dense_key

    base = {"data": {"dataset": "digits"}, "threat": {"epsilon": 0.1, "step_size": 0.02}}
    changed = {
        "data.val_fraction": 0.2,
        "model.width": 2.0,
        "dense.epochs": 3,
        "threat.norm": "l2",
        "threat.epsilon": 0.2,
        "threat.step_size": 0.03,
        "threat.train_steps": 3,
        "seed": 5,
        "prune.sparsity": 0.3,
        "finetune.epochs": 2,
        "threat.eval_steps": 7,
        "data.data_dir": "/elsewhere",
    }
    key = dense_key(cfg.parse_trial_config(base))
    for path, value in changed.items():
        raw = {k: dict(v) for k, v in base.items()}
        *sections, name = path.split(".")
        target = raw.setdefault(sections[0], {}) if sections else raw
        target[name] = value
        dense = path == "seed" or (
            any(path.startswith(p) for p in DENSE_PREFIXES) and path != "data.data_dir"
        )
        assert (dense_key(cfg.parse_trial_config(raw)) != key) == dense, path


def test_finetune_methods_registry_matches_config():
    from robprune.training.losses import OBJECTIVES

    assert ("none", *OBJECTIVES) == cfg.FINETUNE_METHODS


def test_datasets_registry_matches_config():
    from robprune.data import DATASETS

    assert tuple(DATASETS) == cfg.DATASETS


def test_archs_registry_matches_config():
    from robprune.models import list_models

    assert tuple(list_models()) == cfg.ARCHS
    with pytest.raises(ConfigError, match=r"model\.arch: unknown 'nope'; allowed: digits_cnn"):
        cfg.parse_trial_config({"model": {"arch": "nope"}})


def test_every_configured_schedule_is_implemented_and_distinct():
    from robprune.training.schedules import lr_factor

    curves = {
        name: tuple(lr_factor(name, step=s, total_steps=20, warmup_steps=0) for s in range(20))
        for name in cfg.SCHEDULES
    }
    assert len(set(curves.values())) == len(cfg.SCHEDULES)  # no two names mean the same
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor("linear", step=0, total_steps=20, warmup_steps=0)


@pytest.mark.parametrize("prefix", sorted(CONDITIONS))
def test_conditions_name_values_the_config_accepts(prefix):
    governing, values = CONDITIONS[prefix]
    assert values
    for value in values:  # each value the condition names is one a trial may take
        section, key = governing.split(".")
        cfg.parse_trial_config({section: {key: value}})
    defaults = cfg.parse_trial_config({}).to_dict()
    node = defaults
    for part in prefix.rstrip(".").split("."):
        assert part in node, f"{prefix} is not a key of the trial config"
        node = node[part]


def test_factor_table_is_the_trials_schema():
    columns = [f.name for f in TRIALS_SCHEMA]
    start = columns.index(FACTORS[0].column)
    assert tuple(columns[start : start + len(FACTORS)]) == FACTOR_COLUMNS
    kinds = {"string": "string", "float": "double", "int": "int64", "bool": "bool"}
    for spec in FACTORS:
        assert str(TRIALS_SCHEMA.field(spec.column).type) == kinds[spec.kind]
        assert label(spec.column) == spec.label


def test_every_factor_path_is_a_trial_config_key():
    defaults = cfg.parse_trial_config({}).to_dict()
    for spec in FACTORS:
        for path in spec.paths:
            node = defaults
            for part in path.split("."):
                assert part in node, f"{spec.column}: {path} is not a key of the trial config"
                node = node[part]
            assert factor_for_path(path) is spec


def _values(**sections) -> dict:
    return factor_values(cfg.parse_trial_config(sections).to_dict())


def test_factor_values_are_null_where_they_do_not_apply():
    row = _values(prune={"ratio": "uniform", "mrs": {"temperature": 3.0}})
    assert row["temperature"] is None and row["ratio_rule"] == "uniform"
    row = _values(prune={"ratio": "mrs", "mrs": {"temperature": 3.0}})
    assert row["temperature"] == 3.0 and row["band"] is None
    assert row["mrs_estimator"] == "first_order"
    row = _values(prune={"ratio": "mrs_band", "mrs": {"temperature": 3.0, "band": 0.2}})
    assert row["temperature"] is None and row["band"] == 0.2 and row["band_scale"] == "minmax"
    row = _values(finetune={"method": "mart", "mart": {"beta": 2.5}, "trades": {"beta": 9.0}})
    assert row["beta"] == 2.5
    row = _values(finetune={"method": "trades", "mart": {"beta": 2.5}, "trades": {"beta": 9.0}})
    assert row["beta"] == 9.0
    row = _values(finetune={"method": "pgd_at", "lr": 0.2})
    assert row["beta"] is None and row["lr"] == 0.2
    row = _values(finetune={"method": "none", "lr": 0.2})
    assert row["lr"] is None and row["schedule"] is None and row["finetune_epochs"] is None
    assert set(row) == set(FACTOR_COLUMNS)


def test_derived_views_agree_with_the_table():
    from analysis.design.factorial import NESTED
    from analysis.stats.importance import factor_of

    assert NESTED == {
        "temperature": "ratio_rule",
        "band": "ratio_rule",
        "band_scale": "ratio_rule",
        "mrs_estimator": "ratio_rule",
        "mrs_reattack": "ratio_rule",
        "beta": "finetune_method",
        # `when` rules: the fine-tuning recipe only exists when something is fine-tuned
        "finetune_epochs": "finetune_method",
        "lr": "finetune_method",
        "schedule": "finetune_method",
        "attack_bn": "finetune_method",  # only adversarial fine-tuning generates attacks
    }
    assert condition_of("prune.mrs.temperature") == ("prune.ratio", cfg.TEMPERATURE_RULES)
    assert condition_of("prune.mrs.band_scale") == ("prune.ratio", cfg.BAND_RULES)
    assert condition_of("prune.mrs.estimator") == ("prune.ratio", cfg.MRS_RATIO_RULES)
    for spec in FACTORS:
        for path in spec.paths:
            assert factor_of(path) == spec.column
    assert factor_of("dense.beta") == "" and factor_of("prune.mrs.epsilon") == ""
