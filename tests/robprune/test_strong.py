"""The strong response: APGD-CE then APGD-T, worst case per image, on a fixed test subset.

A model that saturates its softmax (logits x 1e4, as defensive distillation does) gives exactly
zero cross-entropy gradients: PGD stands still and only the scale-free targeted DLR loss of
APGD-T breaks it. The primary attack then overstates robustness by a wide margin, and the
paired gap test flags it; a few discordant images do not.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robprune.config import ResolvedThreat, parse_trial_config
from robprune.data import load_data
from robprune.evaluation.final import FinalSuite, final_evaluation
from robprune.evaluation.masking import GAP_ALPHA, gap_flags, mcnemar_p
from robprune.evaluation.strong import strong_indices, strong_label, strong_suite_name
from tests.support.trials import fast_trial


@pytest.fixture(scope="module")
def trained(dense_cache):
    from robprune.trial.builders import build_model, load_trial_data
    from robprune.trial.dense import ensure_dense_for

    config = parse_trial_config(fast_trial(dense_cache))
    dense = ensure_dense_for(config, log=lambda message: None)
    model = build_model(config.model, load_trial_data(config.data, seed=0))
    model.load_state_dict(dense.state_dict())
    return model.eval()


class Saturated(nn.Module):
    """Logits scaled so far that softmax is exactly one-hot in float32: zero CE gradients."""

    def __init__(self, inner: nn.Module, scale: float = 1e4) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale


def _evaluate(model, test, *, strong_images: int, targets: int = 3):
    threat = ResolvedThreat(norm="linf", epsilon=0.1, step_size=0.025, eval_steps=10)
    suite = FinalSuite(
        attacks=("pgd10",), primary="pgd10", threat=threat, batch_size=128,
        strong_images=strong_images, strong_targets=targets,
    )  # fmt: skip
    return final_evaluation(model, test, suite, device=torch.device("cpu"))


def test_strong_subset_is_stratified_fixed_and_the_whole_split_when_small():
    test = load_data("digits").test
    picked = strong_indices(test.y, 100)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    assert (picked == strong_indices(test.y, 100)).all()  # the same for every trial
    counts = torch.bincount(test.y[torch.as_tensor(picked)], minlength=10)
    assert int(counts.min()) >= 9 and int(counts.max()) <= 11  # 10 classes, 100 images
    assert (strong_indices(test.y, 5000) == range(len(test))).all()
    assert parse_trial_config({}).eval.strong_images == 1000  # 0.1 point per image


def test_masked_model_gap_is_large_flagged_and_worst_case_per_image(trained):
    test = load_data("digits").test
    out = _evaluate(Saturated(trained), test, strong_images=120)
    m = out.metrics
    assert m["strong_n"] == 120 and m["strong_suite"] == strong_suite_name(3) == "apgd_ce+apgd_t3"
    assert (
        "not the official AutoAttack" in m["strong_label"]
        and "120 test images" in (m["strong_label"])
    )
    # zero CE gradients: PGD and APGD-CE leave most images; APGD-T's DLR breaks them
    assert m["strong_primary_acc"] - m["strong_acc"] > 0.3
    assert m["strong_apgd_ce_acc"] - m["strong_acc"] > 0.3  # broken by APGD-T only: broken
    strong, ce = out.correct["strong"], out.correct  # per image
    assert not (strong & ~ce["strong"]).any()
    assert m["strong_acc"] == pytest.approx(int(strong.sum()) / 120)
    gap = m["attack_gap"]
    assert gap["images"] == 120 and gap["only_reference_broke"] > 30
    assert "primary_attack_gap" in [f["code"] for f in m["masking_flags"]]
    assert out.attack_config["strong"]["targets"] == 3
    # the same model without the saturation: the suite is no weaker than PGD
    honest = _evaluate(trained, test, strong_images=120).metrics
    assert honest["strong_acc"] <= honest["strong_primary_acc"] + 0.01
    assert m["strong_acc"] <= honest["strong_acc"] + 0.05  # saturation hides nothing from it


def test_gap_flag_respects_the_number_of_images():
    from scipy.stats import binomtest

    for ref, prim in ((2, 0), (7, 1), (20, 3), (0, 4), (60, 20)):
        expected = binomtest(ref, ref + prim, 0.5, alternative="greater").pvalue if ref else 1
        assert mcnemar_p(ref, prim) == pytest.approx(expected, rel=1e-9)

    def gap(n, ref, prim):
        return {"primary": "pgd10", "primary_acc": 0.5 + (ref - prim) / n, "reference": "ref",
                "reference_acc": 0.5, "gap": (ref - prim) / n, "scope": f"on {n} images",
                "only_reference_broke": ref, "only_primary_broke": prim}  # fmt: skip

    assert gap_flags(gap(50, 2, 0)) == []  # 4 points, 2 images: chance
    flagged = gap_flags(gap(500, 20, 0))  # 4 points, 20 images
    assert [f.code for f in flagged] == ["primary_attack_gap"] and "McNemar" in flagged[0].detail
    assert gap_flags(gap(10_000, 250, 150)) == []  # real (p tiny) but 1 point: below 3 points
    assert mcnemar_p(250, 150) < GAP_ALPHA


def test_a_trial_records_the_strong_columns_and_zero_turns_it_off(dense_cache):
    from robprune.io.results_schema import TRIALS_SCHEMA, table_from_rows
    from robprune.run_cli import format_summary
    from robprune.trial import run_trial

    cfg = fast_trial(dense_cache, finetune={"method": "none", "epochs": 0})
    result = run_trial(cfg)
    m = result.metrics
    assert f"strong: {strong_label(1, 50)}" in format_summary(result)
    assert m["strong_n"] == 50 and m["strong_label"] == strong_label(1, 50)
    assert "(1 target)" in m["strong_label"]
    assert 0 <= m["strong_acc"] <= m["strong_clean_acc"] and m["strong_wall_s"] > 0
    strong = {k: v for k, v in m.items() if k.startswith("strong_")}
    assert set(strong) <= set(TRIALS_SCHEMA.names)  # every strong number has its column
    row = table_from_rows([strong], TRIALS_SCHEMA).to_pylist()[0]
    assert row["strong_acc"] == m["strong_acc"] and row["strong_suite"] == "apgd_ce+apgd_t1"
    off = fast_trial(dense_cache, finetune={"method": "none", "epochs": 0})
    off["eval"]["strong_images"] = 0
    assert "strong_acc" not in run_trial(off).metrics


def test_printed_strong_and_autoattack_numbers_say_on_how_many_images():
    import pandas as pd

    from analysis.render.finalists_table import finalists_frame
    from search.finalists.present import images
    from search.run.progress import summary_table

    label = strong_label(3, 359)
    rows = [
        {"trial_id": "a", "robust_acc": 0.6, "val_robust_acc": 0.5, "clean_acc": 0.9,
         "strong_acc": 0.5, "strong_label": label},
        {"trial_id": "b", "robust_acc": 0.7, "val_robust_acc": 0.4, "clean_acc": 0.9},
    ]  # fmt: skip
    text = summary_table(rows, [("robust_acc", "max")], [])
    assert "strong_acc" in text.splitlines()[0] and text.splitlines()[-1].endswith(
        "on 359 test images"
    )
    assert images(1000) == " (on 1000 test images)" and images(None) == ""
    trials = pd.DataFrame(
        {"experiment": ["e", "e"], "trial_id": ["a", "b"], "finalist": [1.0, 1.0],
         "finalist_rank": [1.0, 2.0], "autoattack_acc": [0.4, 0.5],
         "autoattack_n": [1000.0, 500.0], "strong_acc": [0.45, 0.55],
         "strong_n": [1000.0, None]}
    )  # fmt: skip
    frame = finalists_frame(trials)
    assert list(frame["AutoAttack images"]) == [1000, 500]  # per row
    assert list(frame["strong images"]) == [1000, None]


def test_plan_counts_the_strong_response_as_its_own_stage(tmp_path):
    from search.plan.workload import FORWARD, trial_work

    def stages(**eval_section):
        cfg = fast_trial(tmp_path)
        cfg["eval"] = {**cfg["eval"], **eval_section}
        return {s.name: s for s in trial_work(parse_trial_config(cfg)).once}

    strong = stages(strong_images=1000, strong_targets=3)["strong response"]
    # the test split is eval.test_limit 200 images; APGD-CE + 3 APGD-T runs of 100 steps
    assert strong.passes == pytest.approx(200 * (FORWARD + (100 + FORWARD) * 4))
    assert "apgd_ce+apgd_t3" in strong.why and "200 test images" in strong.why
    assert stages(strong_images=50, strong_targets=1)["strong response"].passes < strong.passes
    assert "strong response" not in stages(strong_images=0)
