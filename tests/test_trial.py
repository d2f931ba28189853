"""One trial end to end on digits: the science is wired, deterministic, and resumable."""

from __future__ import annotations

import json
import math

import pytest
import torch
from trial_fixtures import fast_trial

from robprune.errors import TrialFailed
from robprune.trial import EpochReport, run_trial


@pytest.fixture(scope="module")
def baseline(dense_cache):
    return run_trial(fast_trial(dense_cache, prune={"ratio": "mrs"}))


def test_result_has_every_metric_and_table(baseline):
    m = baseline.metrics
    for key in (
        "clean_acc",
        "robust_acc",
        "fgsm_acc",
        "pgd_acc",
        "params",
        "params_dense",
        "flops",
        "flops_dense",
        "achieved_sparsity",
        "dense_clean_acc",
        "dense_robust_acc",
        "val_clean_acc",
        "val_robust_acc",
        "wall_s",
    ):
        assert m[key] is not None, key
    assert 0 <= m["robust_acc"] <= m["clean_acc"] <= 1
    assert m["robust_attack"] == "pgd5" and m["pgd_acc"] == m["robust_acc"]
    assert m["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["epochs_completed"] == 2 and len(baseline.epochs) == 2
    assert baseline.attack_config["pgd5"]["steps"] == 5
    assert {row["layer"] for row in baseline.layers} >= {"classifier"}
    assert any(row["mrs"] is not None and row["ratio"] > 0 for row in baseline.layers)
    json.dumps(baseline.to_dict())  # JSON-able


def test_same_seed_same_metrics(baseline, dense_cache):
    again = run_trial(fast_trial(dense_cache, prune={"ratio": "mrs"}))
    for key in ("clean_acc", "robust_acc", "fgsm_acc", "val_robust_acc", "params"):
        assert again.metrics[key] == baseline.metrics[key], key
    assert [e["train_loss"] for e in again.epochs] == [e["train_loss"] for e in baseline.epochs]


def test_resume_from_checkpoint_matches_uninterrupted(baseline, dense_cache, tmp_path):
    config = fast_trial(dense_cache, prune={"ratio": "mrs"})

    class Stop(Exception):
        pass

    def stop_after_first(report: EpochReport) -> None:
        report.save_checkpoint(tmp_path)
        raise Stop

    with pytest.raises(Stop):
        run_trial(config, on_epoch=stop_after_first)
    seen = []
    resumed = run_trial(config, resume=tmp_path, on_epoch=lambda r: seen.append(r.epoch))
    assert seen == [2]  # continued after epoch 1, did not start over
    assert resumed.metrics["epochs_completed"] == 2
    assert resumed.metrics["robust_acc"] == baseline.metrics["robust_acc"]
    assert [e["train_loss"] for e in resumed.epochs] == [e["train_loss"] for e in baseline.epochs]


def test_nan_loss_stops_with_a_clear_reason():
    from robprune.data import load_data
    from robprune.models import create_model
    from robprune.training import AdversarialSetting, Trainer

    data = load_data("digits", train_limit=200)
    model = create_model(
        "small_cnn",
        num_classes=10,
        input_shape=data.input_shape,
        mean=data.mean,
        std=data.std,
        width=0.5,
    )
    with torch.no_grad():  # a diverged weight, as an exploding learning rate leaves behind
        model.classifier.weight[0, 0] = float("inf")
    trainer = Trainer(
        model=model,
        train=data.train,
        method="ce",
        epochs=1,
        lr=0.1,
        schedule="constant",
        warmup_epochs=0,
        batch_size=64,
        weight_decay=0.0,
        momentum=0.9,
        augment=False,
        device=torch.device("cpu"),
        seed=0,
        adversarial=AdversarialSetting(epsilon=0.1, step_size=0.025, steps=1),
    )
    with pytest.raises(TrialFailed, match="non-finite training loss .* epoch 1, step 1"):
        trainer.run_epoch()


@pytest.mark.parametrize("method", ["trades", "mart", "fgsm_rs", "none"])
def test_every_finetune_method_runs(dense_cache, method):
    result = run_trial(fast_trial(dense_cache, finetune={"method": method, "epochs": 1}))
    assert math.isfinite(result.metrics["robust_acc"])
    assert result.metrics["epochs_completed"] == (0 if method == "none" else 1)


def test_pgd_at_finetuning_beats_ce_and_finetuning_beats_none(dense_cache):
    """The paper's premise on real digits: robust fine-tuning matters after pruning."""
    common = {"prune": {"sparsity": 0.7}, "eval": {"test_limit": None}}
    runs = {}
    for name, ft in {
        "pgd_at": {"method": "pgd_at", "epochs": 4, "lr": 0.02},
        "ce": {"method": "ce", "epochs": 4, "lr": 0.02},
    }.items():
        runs[name] = run_trial(fast_trial(dense_cache, finetune=ft, **common)).metrics
    assert runs["pgd_at"]["achieved_sparsity"] == pytest.approx(
        runs["ce"]["achieved_sparsity"], abs=0.01
    )
    assert runs["pgd_at"]["robust_acc"] > runs["ce"]["robust_acc"] + 0.10

    heavy = {"prune": {"sparsity": 0.9, "max_layer_ratio": 0.95}, "eval": {"test_limit": None}}
    tuned = run_trial(
        fast_trial(dense_cache, finetune={"method": "pgd_at", "epochs": 4, "lr": 0.02}, **heavy)
    ).metrics
    untuned = run_trial(fast_trial(dense_cache, finetune={"method": "none"}, **heavy)).metrics
    assert tuned["robust_acc"] > untuned["robust_acc"] + 0.10
    assert tuned["clean_acc"] > untuned["clean_acc"] + 0.10


def test_dense_model_is_trained_once(dense_cache):
    config = fast_trial(dense_cache, finetune={"method": "none"})
    run_trial(config)
    entries = list((dense_cache / "dense").glob("*/meta.json"))
    before = {p: p.stat().st_mtime_ns for p in entries}
    run_trial(config)
    after = {p: p.stat().st_mtime_ns for p in (dense_cache / "dense").glob("*/meta.json")}
    assert before == after
    weights = next(iter(entries)).parent / "model.pt"
    torch.load(weights, weights_only=True)  # plain tensors, no pickled modules


def test_concurrent_trials_share_one_dense_training(tmp_path):
    """Two processes asking for the same dense model at once: one trains, one waits."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from trial_fixtures import fast_trial
        from robprune.trial import run_trial
        config = fast_trial({str(tmp_path / "cache")!r}, finetune={{"method": "none"}},
                            dense={{"epochs": 3}})
        run_trial(config, log=lambda m: print(m, flush=True))
    """)
    fixtures = tmp_path.parent / "trial_fixtures.py"
    fixtures.write_text(
        (__import__("pathlib").Path(__file__).parent / "trial_fixtures.py").read_text()
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    trained = [out.count("dense small_cnn/pgd_at epoch") for out in outputs]
    assert sorted(trained) == [0, 3]
    assert len(list((tmp_path / "cache" / "dense").glob("*/model.pt"))) == 1


def test_saved_pruned_model_reloads_without_pickled_modules(dense_cache, tmp_path):
    from robprune.config import parse_trial_config
    from robprune.data import load_data, to_float
    from robprune.dense import build_model
    from robprune.models import load_pruned_state_dict

    config = fast_trial(dense_cache, finetune={"method": "none"})
    result = run_trial(config, save_model=tmp_path / "model.pt")
    parsed = parse_trial_config(config)
    data = load_data("digits", seed=parsed.seed)
    model = build_model(parsed.model, data)
    load_pruned_state_dict(model, torch.load(tmp_path / "model.pt", weights_only=True))
    assert sum(p.numel() for p in model.parameters()) == result.metrics["params"]
    model.eval()
    with torch.no_grad():
        acc = (model(to_float(data.test.x[:200])).argmax(1) == data.test.y[:200]).float().mean()
    assert float(acc) == pytest.approx(result.metrics["clean_acc"], abs=1e-6)
