"""The search's closing summary (`search.run.progress.summary_table`): the best trials are
ranked on the validation metric the search optimised, never on the test split."""

from __future__ import annotations

from search.run.progress import summary_table


def test_best_trials_are_ranked_on_validation_not_test():
    rows = [
        {"trial_id": "a", "robust_acc": 0.9, "val_robust_acc": 0.1, "clean_acc": 0.9},
        {"trial_id": "b", "robust_acc": 0.2, "val_robust_acc": 0.8, "clean_acc": 0.5},
    ]
    lines = summary_table(rows, [("robust_acc", "max")], []).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["b", "a"]
