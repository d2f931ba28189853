"""The official AutoAttack (`pyautoattack`) against our attacks, on a PGD-trained digits model.

Agreement: on the same model and examples, our APGD-CE and APGD-T are within one
point of the official ones, and AutoAttack <= our APGD + 0.5 point <= PGD-20 + 0.5 point.
Kept small (N examples, a small CNN trained for a few seconds) so it stays a CI test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robprune import attacks as A
from robprune.attacks.autoattack import (
    LABELS,
    official_checks,
    run_official_attacks,
)
from robprune.evaluation.masking import FLAG_MEANINGS, MaskingFlag, square_flags, sweep_flags

EPS = 0.1
N = 200


@pytest.fixture(scope="module")
def digits_model():
    from robprune.config import ModelConfig, TrainRecipe
    from robprune.data import load_data, to_float
    from robprune.training.losses import AdversarialSetting
    from robprune.training.trainer import Trainer
    from robprune.trial.builders import build_model

    torch.manual_seed(0)
    data = load_data("digits", val_fraction=0.1, seed=0)
    model = build_model(ModelConfig(arch="small_cnn", width=0.5), data)
    trainer = Trainer(
        recipe=TrainRecipe(epochs=6, lr=0.05, batch_size=64),
        model=model,
        train=data.train,
        adversarial=AdversarialSetting(
            epsilon=EPS, step_size=EPS / 4, steps=3, norm="linf", beta=0.0
        ),
        augment=False,
        device=torch.device("cpu"),
        seed=0,
    )
    for _ in range(6):
        trainer.run_epoch()
    model.eval()
    return model, to_float(data.test.x[:N]), data.test.y[:N]


@pytest.fixture(scope="module")
def official(digits_model):
    model, x, y = digits_model
    before = torch.get_rng_state()
    standard = run_official_attacks(model, x, y, epsilon=EPS, seed=0)
    apgd_t = run_official_attacks(model, x, y, attacks=["apgd-t"], epsilon=EPS, seed=0)
    assert torch.equal(before, torch.get_rng_state())  # the package reseeds; we restore
    return standard, apgd_t


def _ours(model, x, y, name: str) -> torch.Tensor:
    attack = A.build_attack(name, epsilon=EPS)
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def test_agreement_with_official_autoattack(digits_model, official):
    model, x, y = digits_model
    standard, official_t = official
    ce, t = _ours(model, x, y, "apgd_ce"), _ours(model, x, y, "apgd_t")
    ours_ce, ours_t = ce.float().mean().item(), t.float().mean().item()
    ours_apgd = (ce & t).float().mean().item()
    pgd20 = A.robust_accuracy(
        model, x, y, A.build_attack("pgd20", epsilon=EPS), generator=torch.Generator()
    )
    assert 0.3 < pgd20 < standard.clean_accuracy  # a model with something to attack
    # the standard version runs APGD-CE first on every correct example: that stage is APGD-CE
    assert abs(ours_ce - standard.stages["apgd-ce"]) <= 0.01
    assert abs(ours_t - official_t.accuracy) <= 0.01
    assert standard.accuracy <= ours_apgd + 0.005
    assert ours_apgd <= pgd20 + 0.005
    assert list(standard.stages) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert standard.accuracy == pytest.approx(standard.stages["square"], abs=1e-6)


def test_strong_response_agrees_with_the_official_apgd_stages(digits_model, official):
    """Our strong response at AutoAttack's settings (9 targets) against the official standard
    version's cumulative accuracy after APGD-CE and APGD-T: the same suite, the same order."""
    from robprune.config import ResolvedThreat
    from robprune.data import TensorSplit
    from robprune.evaluation.strong import strong_evaluation

    model, x, y = digits_model
    standard, _ = official
    threat = ResolvedThreat(norm="linf", epsilon=EPS, step_size=None, eval_steps=20)
    ours = strong_evaluation(
        model, TensorSplit(x=x, y=y), threat=threat, targets=9, batch_size=256,
        device=torch.device("cpu"),
    )  # fmt: skip
    assert abs(ours.accuracy - standard.stages["apgd-t"]) <= 0.01
    assert ours.accuracy <= standard.stages["apgd-ce"] + 0.01  # APGD-T only removes images


def test_outcome_is_labelled_official(official):
    standard, _ = official
    assert standard.label == "AutoAttack (standard, official)" == LABELS["standard"]
    assert standard.config["implementation"] == "pyautoattack 0.2.0"
    assert standard.config["examples"] == N and standard.config["norm"] == "linf"
    assert standard.correct.shape == (N,)
    assert standard.checks == []  # a plain CNN: nothing masked


def test_official_checks_flag_softmax_and_randomness():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    assert official_checks(base, x, y) == []
    softmax = nn.Sequential(base, nn.Softmax(dim=1))
    assert [c for c, _ in official_checks(softmax, x, y)] == ["aa_softmax_output"]

    class Noisy(nn.Module):
        def forward(self, inp):
            return base(inp + 0.5 * torch.randn_like(inp))

    assert "aa_randomized" in [c for c, _ in official_checks(Noisy(), x, y)]


def test_masking_flags_say_what_they_mean():
    assert square_flags(0.40, 0.50, "pgd20", 200)[0].code == "square_beats_pgd"
    assert square_flags(0.50, 0.50, "pgd20", 200) == []
    honest = [
        {"epsilon": 0.1, "accuracy": 0.6},
        {"epsilon": 0.2, "accuracy": 0.2},
        {"epsilon": 1.0, "accuracy": 0.0},
    ]
    assert sweep_flags(honest) == []
    masked = [
        {"epsilon": 0.1, "accuracy": 0.6},
        {"epsilon": 0.2, "accuracy": 0.7},
        {"epsilon": 1.0, "accuracy": 0.5},
    ]
    assert {f.code for f in sweep_flags(masked)} == {
        "eps_sweep_not_monotone",
        "eps_sweep_not_zero",
    }
    for code, meaning in FLAG_MEANINGS.items():
        assert meaning.endswith(".") and meaning.count(". ") == 0, code  # one sentence
    flag = MaskingFlag(code="flat_loss", detail="x")
    assert flag.meaning in str(flag) and flag.to_dict()["code"] == "flat_loss"
    with pytest.raises(ValueError):
        MaskingFlag(code="nope", detail="x")


def test_final_evaluation_deep_checks_on_digits(digits_model):
    from robprune.config import ResolvedThreat
    from robprune.data import TensorSplit
    from robprune.evaluation.final import FinalSuite, final_evaluation

    model, x, y = digits_model
    test = TensorSplit(x=x[:40].contiguous(), y=y[:40].contiguous())
    suite = FinalSuite(
        attacks=("fgsm", "pgd10"),
        primary="pgd10",
        threat=ResolvedThreat(norm="linf", epsilon=EPS, step_size=None, eval_steps=10),
        batch_size=64,
        autoattack="standard",
        autoattack_n=20,
        deep_checks=True,
    )
    out = final_evaluation(model, test, suite, device=torch.device("cpu"))
    m = out.metrics
    assert m["autoattack_label"] == "AutoAttack (standard, official)"
    assert m["autoattack_n"] == 20 and 0 <= m["autoattack_acc"] <= m["clean_acc"]
    assert m["attacks"].keys() == {"fgsm", "pgd10"} and m["robust_acc"] == m["pgd_acc"]
    sweep = m["eps_sweep"]
    assert [row["epsilon"] for row in sweep] == pytest.approx([0, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0])
    assert sweep[-1]["accuracy"] <= 0.01  # an unbounded PGD breaks every example
    assert 0 <= m["square_acc"] <= 1 and "square" in out.attack_config
    assert all(f["meaning"] == FLAG_MEANINGS[f["code"]] for f in m["masking_flags"])
