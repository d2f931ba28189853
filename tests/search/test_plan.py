"""`robprune plan`: counts, the cost model's parts, the calibration cache, and no Ray or torch.

The counts are checked against real searches in tests/system/test_search_ray.py and
tests/system/test_search_dedupe.py; here everything runs without Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli import main as cli_main
from search.plan.asha import asha_epochs, rungs
from search.plan.calibrate import StepKey, cached, calibrate
from search.plan.count import count_spec
from search.plan.estimate import list_schedule
from search.plan.plan import make_plan, plan_dict
from search.plan.workload import trial_work
from search.spec.parse import parse_spec
from tests.support.paths import ROOT
from tests.support.trials import fast_trial


def _plan_json(capsys, *argv: str) -> dict:
    assert cli_main(["plan", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_counts_the_examples(capsys):
    digits = _plan_json(capsys, str(ROOT / "examples/digits-search.yaml"), "--epoch-seconds", "5")
    assert (digits["mode"], digits["trials"], digits["space_size"]) == ("optimize", 40, None)
    assert len(digits["dense_models"]) == 1 and len(digits["factors"]) == 12
    ablation = _plan_json(
        capsys, str(ROOT / "examples/allocation-ablation.yaml"), "--epoch-seconds", "5"
    )
    # data set x sparsity x budget x (uniform, global, {mrs, mrs_band} x 2 MRS estimators)
    cells = 2 * 2 * 2 * (2 + 2 * 2)
    assert ablation["trials"] == cells * 3 == ablation["space_size"] == ablation["trainings"]
    assert ablation["trials_why"] == f"{cells} grid cells x 3 seed(s)"
    dense = ablation["dense_models"]
    assert len(dense) == 6  # 2 data sets x 3 seeds
    assert {(d["dataset"], d["seed"]) for d in dense} == {
        (ds, s) for ds in ("digits", "synthetic") for s in (0, 1, 2)
    }
    cost = ablation["cost"]
    assert cost["wall_hours"] > 0 and cost["trial_hours"] > cost["dense_hours"] > 0
    stages = {row["stage"] for row in cost["drivers"]}
    assert {"dense", "final evaluation", "fine-tuning"} <= stages


def test_plan_counts_the_paper_example(capsys):
    """examples/paper-central.yaml: 2 architectures x 5 criteria x 4 fine-tuning methods x 3
    seeds, one dense model per architecture and seed; --epoch-seconds is a pgd_at epoch."""
    spec = str(ROOT / "examples/paper-central.yaml")
    plan = _plan_json(capsys, spec, "--epoch-seconds", "60", "--workers", "8")
    assert (plan["mode"], plan["trials"], plan["space_size"]) == ("grid", 120, 120)
    assert plan["trials_why"] == "40 grid cells x 3 seed(s)"
    dense = {(d["arch"], d["seed"]) for d in plan["dense_models"]}
    assert dense == {(a, s) for a in ("resnet18", "vgg16_bn") for s in (0, 1, 2)}
    assert "pgd_at fine-tuning epoch" in plan["cost_source"]
    stages = {row["stage"]: row for row in plan["cost"]["drivers"]}
    assert stages["strong response"]["share_of_trials"] > 0
    shorter = _plan_json(
        capsys, spec, "--epoch-seconds", "60", "--workers", "8", "--set", "finetune.epochs=10"
    )
    assert shorter["cost"]["trial_hours"] < plan["cost"]["trial_hours"]


def test_plan_text_names_what_drives_the_cost(capsys):
    spec = str(ROOT / "examples/digits-search.yaml")
    assert cli_main(["plan", spec, "--epoch-seconds", "5", "--workers", "8"]) == 0
    out = capsys.readouterr().out
    assert "trials: 40" in out and "dense models: 1" in out
    assert "on 8 worker(s) (--workers" in out
    if (os.cpu_count() or 1) < 8:  # 8 workers do not exist here: the plan says so
        assert "here only 2 run at once" in out and "the wall time is for a cluster" in out
    assert "attack steps x epochs x images" in out and "fine-tuning:" in out
    pruning = next(ln for ln in out.splitlines() if ln.strip().startswith("pruning:"))
    assert "image-passes" not in pruning and "1 structured pruning(s) a trial" in pruning


def test_plan_starts_neither_ray_nor_torch():
    code = (
        "import sys; from cli import main; "
        "rc = main(['plan', 'examples/allocation-ablation.yaml', '--epoch-seconds', '3']); "
        "heavy = [m for m in ('torch', 'ray', 'optuna') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers: must be a positive integer, got 0"),
        (["--epoch-seconds", "nan"], "--epoch-seconds: must be a positive number"),
        (["--set", "search.num_samples=0"], "search.num_samples"),
    ],
)
def test_plan_bad_input_is_one_line_exit_2(capsys, extra, message):
    assert cli_main(["plan", str(ROOT / "examples/digits-search.yaml"), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_asha_epochs_as_rays_asha_stops_trials():
    assert rungs(grace=1, reduction=3, max_t=10) == [1, 3, 9]
    assert asha_epochs([10, 10], grace=1, reduction=0, max_t=10) == [10.0, 10.0]
    alone = asha_epochs([10], grace=1, reduction=3, max_t=10)
    assert alone == [10.0]  # the first trial at every rung continues
    many = asha_epochs([10] * 400, grace=1, reduction=3, max_t=10)
    # late trials approach the asymptote: a third pass each rung
    late = sum(many[-100:]) / 100
    assert 1 + 2 / 3 + 6 / 9 + 1 / 27 - 0.3 < late < 1 + 2 / 3 + 6 / 9 + 1 / 27 + 0.3
    assert many[0] > many[10] > late  # early trials run longer
    assert asha_epochs([2, 2], grace=1, reduction=3, max_t=10)[0] == 2.0


def test_list_schedule_lays_trials_on_workers():
    assert list_schedule([3, 3, 3], 2) == 6
    assert list_schedule([5, 1, 1, 1, 1, 1], 2) == 5
    assert list_schedule([], 4) == 0


def test_trial_work_counts_attack_steps_epochs_and_images():
    raw = fast_trial("unused", finetune={"method": "pgd_at", "epochs": 3, "batch_size": 64})
    from robprune.config import parse_trial_config

    work = trial_work(parse_trial_config(raw))
    # digits: 1438 training images, 144 carved for validation -> 1294; whole batches of 64
    assert work.train_images == 1280 and work.epochs == 3
    assert work.epoch_train.passes == 1280 * (3 + 1)  # PGD-3 examples + the update


def test_calibration_is_cached_by_its_inputs(tmp_path):
    key = StepKey(
        arch="small_cnn",
        width=0.5,
        shape=(1, 8, 8),
        classes=10,
        method="ce",
        steps=1,
        batch=16,
        norm="linf",
        device="cpu",
        threads=1,
    )
    assert cached(tmp_path, key) is None
    first = calibrate(tmp_path, key)
    assert first.dense_s > 0 and first.pruned_s > 0 and first.device.startswith("cpu")
    assert first.device != "cpu (cpu)" and "1 threads" in first.device  # says which CPU
    assert cached(tmp_path, key) == first  # read back, not measured again
    assert len(list((tmp_path / "calibration").glob("*.json"))) == 1
    other = StepKey(**{**key.__dict__, "batch": 32})
    assert cached(tmp_path, other) is None  # another input, another entry


def test_plan_without_calibration_says_so(tmp_path):
    raw = fast_trial(
        tmp_path / "cache",
        prune={"criterion": {"choice": ["l1", "l2"]}},
        search={"mode": "optimize", "num_samples": 5, "scheduler": "none"},
    )
    spec = parse_spec(raw, name="p", storage=str(tmp_path))
    plan = make_plan(spec, measure=False)
    assert plan.cost is None and "not calibrated" in plan.cost_note
    data = plan_dict(plan)
    assert data["trials"] == 5 and data["trainings"] == 2 and data["space_size"] == 2
    assert "stops once every one was tried" in data["dedupe"]
    assert count_spec(spec).dense[0].arch == "small_cnn"


_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]\n" for i in range(1, 9)
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name: x\nprune: " + b"[" * 600 + b"]" * 600 + b"\n", "nested over 32 deep"),
        (b"name: x\nprune: {a: " * 1 + b"{b: " * 40 + b"1" + b"}" * 41 + b"\n", "nested over"),
        (b"name: \xff\xfe\n", "not UTF-8 text (byte 6)"),
        (_BOMB.encode() + b"prune: {record_mrs: *a8}\n", "once YAML aliases are expanded"),
    ],
)
def test_spec_files_the_parser_chokes_on_are_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    assert cli_main(["plan", str(path), "--epoch-seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_an_mrs_estimator_is_costed_once_per_dense_model_and_cache_name(tmp_path):
    """The trial caches each estimator's values beside the dense model: only the first trial
    that needs them computes them (prune_damage once per sparsity: its name holds it)."""
    from robprune.config import parse_trial_config
    from search.plan.estimate import _cached_seconds, hand_rates

    def config(**prune):
        base = {"ratio": "mrs", "record_mrs": ["prune_damage"], **prune}
        return parse_trial_config(fast_trial(tmp_path, prune=base))

    configs = [
        config(sparsity=0.5),
        config(sparsity=0.5, mrs={"num_examples": 128, "temperature": 4.0}),  # same names
        config(sparsity=0.7),  # first_order again cached; prune_damage's name has the sparsity
        parse_trial_config(fast_trial(tmp_path, seed=1, prune={"ratio": "mrs"})),  # new dense
    ]
    rates = hand_rates(1.0, configs)
    charged = [
        [row[0].why.split(":")[0] for row in rows]
        for _, rows in _cached_seconds(configs, len(configs), rates)
    ]
    assert charged == [["first_order", "prune_damage"], [], ["prune_damage"], ["first_order"]]


def test_reattack_costs_one_calibration_attack_per_damage_group(tmp_path):
    from robprune.config import parse_trial_config
    from search.plan.workload import DAMAGE_GROUPS, cached_work

    def work(reattack: bool):
        mrs = {"estimator": "prune_damage", "reattack": reattack}
        config = parse_trial_config(fast_trial(tmp_path, prune={"ratio": "mrs", "mrs": mrs}))
        (only,) = cached_work(config)
        return config, only

    config, fixed = work(False)
    _, again = work(True)
    n = config.prune.mrs.num_examples
    extra = n * DAMAGE_GROUPS * config.threat.train_steps
    assert again.stage.passes == pytest.approx(fixed.stage.passes + extra)
    assert again.key != fixed.key and again.prunings == fixed.prunings == DAMAGE_GROUPS
    mrs = {"estimator": "prune_damage", "reattack": {"choice": [False, True]}}
    raw = fast_trial(
        tmp_path / "cache", prune={"ratio": "mrs", "mrs": mrs}, search={"mode": "grid"}
    )
    spec = parse_spec(raw, name="p", storage=str(tmp_path))  # a search may vary it
    assert plan_dict(make_plan(spec, measure=False))["space_size"] == 2


def test_the_strong_responses_other_extreme_saves_exactly_apgd_t(capsys):
    """The plan counts APGD-T on every test image (an upper bound) and also says what the
    search costs if APGD-CE breaks every image; without a strong response there is no range."""
    from search.plan.workload import FORWARD, STRONG_STEPS

    spec = str(ROOT / "examples/paper-central.yaml")
    plan = _plan_json(capsys, spec, "--epoch-seconds", "60", "--workers", "8")
    cost, fewest = plan["cost"], plan["cost"]["if_apgd_ce_breaks_every_image"]
    strong = next(r for r in cost["drivers"] if r["stage"] == "strong response")
    targets = 3  # eval.strong_targets' default
    per = FORWARD + (STRONG_STEPS + FORWARD) * (1 + targets)
    saved = strong["seconds"] * (1 - (FORWARD + STRONG_STEPS + FORWARD) / per)
    mean_saved = saved / plan["trials"]
    assert fewest["mean_trial_seconds"] == pytest.approx(cost["mean_trial_seconds"] - mean_saved)
    assert 0 < fewest["wall_seconds"] < cost["wall_seconds"]
    assert "if APGD-CE breaks every image: wall" in _plan_text(spec)
    none = _plan_json(capsys, spec, "--epoch-seconds", "60", "--set", "eval.strong_images=0")
    assert none["cost"]["if_apgd_ce_breaks_every_image"] is None
    assert "if APGD-CE breaks" not in _plan_text(spec, "--set", "eval.strong_images=0")


def _plan_text(spec: str, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "plan", spec, "--epoch-seconds", "60", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
