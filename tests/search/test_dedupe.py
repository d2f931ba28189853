"""search.dedupe without Ray: what counts as the same configuration, the originals' record,
the space's size, and the report counting a repeated configuration once (the searches
themselves: tests/system/test_search_dedupe.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.read.load import load_results
from search.spec.parse import load_spec
from search.state.repeats import Originals, config_key
from tests.support.analysis_tables import planted_trials, write_experiment
from tests.support.paths import ROOT
from tests.support.trials import fast_trial


def test_config_key_is_the_resolved_config_seed_included():
    base = fast_trial("/tmp/a")
    same = fast_trial("/tmp/elsewhere", name="other", finetune={"schedule": "cosine"})
    assert config_key(base) == config_key(same)  # a default written out; name and cache
    assert config_key(base) != config_key(fast_trial("/tmp/a", seed=1))
    assert config_key(base) != config_key(fast_trial("/tmp/a", prune={"criterion": "l2"}))


def test_originals_keep_the_first_trial_of_a_configuration():
    originals = Originals()
    assert originals.claim("k1", "t1", "run-1") is None
    assert originals.claim("k1", "t1", "run-1") is None  # the same trial asked again
    assert originals.claim("k1", "t2", "run-1") == ("t1", "run-1")
    assert originals.claim("k2", "t3", "run-2") is None
    assert len(originals) == 2


@pytest.mark.parametrize(
    "example", ["allocation-ablation.yaml", "demo-search.yaml", "digits-search.yaml"]
)
def test_space_size_counts_the_grid_without_building_it(example):
    from search.spec.grid import grid_assignments, space_size

    spec = load_spec(ROOT / "examples" / example)
    size = space_size(spec)
    if any(d.kind != "choice" for d in spec.dists):
        assert size is None
    else:
        assert size == len(grid_assignments(spec)) * spec.search.seeds


def test_the_report_counts_a_repeated_configuration_once(tmp_path):
    trials = planted_trials({"criterion": 0.2, "finetune_method": 0.5}, seeds=1)
    trials["repeat_of"] = None
    repeats = trials.head(5).copy()
    repeats["trial_id"] = [f"repeat-{i}" for i in range(5)]
    repeats["repeat_of"] = list(trials.head(5)["trial_id"])
    both = pd.concat([trials, repeats], ignore_index=True)
    results = load_results([write_experiment(tmp_path, both)])
    assert len(results.ok) == len(trials)
    assert any("answered from it (search.dedupe)" in note for note in results.notes)


def _searcher(tmp_path, criteria: list[str], *, sampler_seed: int = 0, stop_when_exhausted=False):
    """A `StudySearch` over a criterion choice on a real journal, without a Ray session."""
    from search.run.study import make_sampler
    from search.run.tune_internals import StudySearch
    from search.spec.grid import space_size
    from search.spec.parse import parse_spec
    from search.spec.space import SpaceFunction

    raw = fast_trial(
        tmp_path / "cache",
        prune={"criterion": {"choice": criteria}},
        search={
            "mode": "optimize",
            "num_samples": 4,
            "scheduler": "none",
            "sampler_seed": sampler_seed,
        },
    )
    spec = parse_spec(raw, name="s", storage=str(tmp_path))
    return StudySearch(
        SpaceFunction(spec, str(tmp_path / "cache")),
        metric="robust_acc",
        mode="max",
        sampler=make_sampler(spec.search),
        study_name="s",
        journal=tmp_path / "journal.log",
        run="run-000",
        space_size=space_size(spec) if stop_when_exhausted else None,
    )


def test_the_searcher_marks_repeats_and_stops_when_the_space_is_exhausted(tmp_path):
    """Ray's OptunaSearch wrapper on a real journal, without a Ray session."""
    from ray.tune.search import Searcher

    searcher = _searcher(tmp_path, ["l1", "l2"], sampler_seed=1, stop_when_exhausted=True)
    seen = []
    for i in range(4):
        config = searcher.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            seen.append("FINISHED")
            break
        seen.append((config["trial"]["prune"]["criterion"], config.get("repeat_of")))
        searcher.on_trial_complete(f"t{i}", {"robust_acc": 0.5, "training_iteration": 1})
    assert seen == [
        ("l2", None),
        ("l2", {"trial_id": "t0", "run": "run-000"}),
        ("l1", None),
        "FINISHED",
    ]
    attrs = [t.user_attrs for t in searcher._ot_study.trials]
    assert [a.get("repeat_of") for a in attrs] == [None, "t0", None]
    assert attrs[0]["config_key"] == attrs[1]["config_key"] != attrs[2]["config_key"]


def _lamp_spec(tmp_path, mode: str, dedupe: bool = True):
    from search.spec.parse import parse_spec

    raw = fast_trial(
        tmp_path / "cache",
        prune={
            "criterion": {"choice": ["l1", "l2", "lamp"]},
            "ratio": {"choice": ["uniform", "global"]},
        },
        search={"mode": mode, "dedupe": dedupe},
    )
    raw["search"].update({"seeds": 2} if mode == "grid" else {"num_samples": 8})
    return parse_spec(raw, name="s", storage=str(tmp_path))


def test_a_grid_leaves_out_cells_that_resolve_like_an_earlier_one(tmp_path):
    """lamp under the uniform rule is l2: with dedupe that cell is not in the grid."""
    from search.plan.plan import make_plan
    from search.spec.grid import grid_configs, space_size

    spec = _lamp_spec(tmp_path, "grid")
    configs = grid_configs(spec, str(tmp_path / "cache"))
    keys = [config_key(c) for c in configs]
    assert len(configs) == 5 * 2 == len(set(keys)) == space_size(spec)
    cells = {(c["prune"]["criterion"], c["prune"]["ratio"]) for c in configs}
    assert ("lamp", "uniform") not in cells and ("lamp", "global") in cells
    assert "prune.criterion=lamp runs as prune.criterion=l2" in spec.grid_repeats.describe()
    plan = make_plan(spec, epoch_seconds=1.0)
    assert plan.counts.trials == plan.trainings == 10

    every = _lamp_spec(tmp_path, "grid", dedupe=False)
    configs = grid_configs(every, str(tmp_path / "cache"))
    assert len(configs) == 12 and len({config_key(c) for c in configs}) == 10
    assert space_size(every) == 10
    plan = make_plan(every, epoch_seconds=1.0)
    assert plan.counts.trials == plan.trainings == 12
    assert "trained again (search.dedupe: false)" in plan.dedupe


def test_an_optimize_space_counts_configurations_as_they_resolve(tmp_path):
    from search.spec.grid import space_size

    assert space_size(_lamp_spec(tmp_path, "optimize")) == 5  # 6 cells, lamp+uniform is l2


def test_a_failed_original_is_forgotten_and_a_repeat_that_trained_is_its_own_row(tmp_path):
    """An original that failed is no answer: the next trial of its configuration trains and
    becomes the original; a repeat that trained itself is exported without `repeat_of`."""
    from types import SimpleNamespace

    import pyarrow.fs as pafs

    from search.results.export import _repeat_of
    from search.state.repeats import REPLAY_FILE

    originals = Originals()
    assert originals.claim("k1", "t1", "run") is None
    originals.forget("t1")
    assert originals.claim("k1", "t2", "run") is None and len(originals) == 1

    searcher = _searcher(tmp_path, ["l1", "l2"], sampler_seed=1)
    first = searcher.suggest("t0")
    searcher.on_trial_complete("t0", None, error=True)
    second = searcher.suggest("t1")
    criteria = [c["trial"]["prune"]["criterion"] for c in (first, second)]
    assert criteria == ["l2", "l2"]  # the same configuration again (TPE, seed 1)
    assert "repeat_of" not in second  # its original failed: it trains, it is the original

    ref = {"trial_id": "t0", "run": "run-000"}
    checkpoint = SimpleNamespace(filesystem=pafs.LocalFileSystem(), path=str(tmp_path))
    trial = SimpleNamespace(config={"repeat_of": ref}, checkpoint=None)
    assert _repeat_of(trial) == "t0"  # waiting for its original
    trial.checkpoint = checkpoint
    assert _repeat_of(trial) is None  # trained itself
    (tmp_path / REPLAY_FILE).write_text("{}")
    assert _repeat_of(trial) == "t0"  # answered from the original


def test_a_repeat_that_trained_after_its_original_failed_answers_the_next(tmp_path):
    searcher = _searcher(tmp_path, ["l2"])  # every suggestion is the same configuration
    assert "repeat_of" not in searcher.suggest("t0")
    assert searcher.suggest("t1")["repeat_of"]["trial_id"] == "t0"
    searcher.on_trial_complete("t0", None, error=True)  # t1 then trains itself
    searcher.on_trial_complete("t1", {"robust_acc": 0.5, "training_iteration": 1})
    assert searcher.suggest("t2")["repeat_of"]["trial_id"] == "t1"


@pytest.mark.parametrize("example", ["allocation-ablation.yaml", "demo-search.yaml"])
def test_configs_parsed_together_equal_configs_parsed_one_by_one(example, tmp_path):
    """`parse_trial_configs` / `config_keys` share sections between configs (speed only)."""
    import copy

    from robprune.config import parse_trial_config, parse_trial_configs
    from robprune.errors import ConfigError
    from search.spec.grid import grid_configs
    from search.spec.trial import config_keys

    configs = grid_configs(load_spec(ROOT / "examples" / example), str(tmp_path))
    assert parse_trial_configs(configs) == [parse_trial_config(c) for c in configs]
    assert config_keys(configs) == [config_key(c) for c in configs]
    bad = copy.deepcopy(configs[1])
    bad["eval"]["primary"] = "pgd99"  # not among eval.attacks: the section's own check
    with pytest.raises(ConfigError) as alone:
        parse_trial_config(bad)
    with pytest.raises(ConfigError) as together:
        parse_trial_configs([configs[0], bad])
    assert str(together.value) == str(alone.value)
    worse = {**configs[0], "prune": None}
    with pytest.raises(ConfigError) as alone:
        parse_trial_config(worse)
    with pytest.raises(ConfigError) as together:
        parse_trial_configs([worse])
    assert str(together.value) == str(alone.value)
