"""The finalists section: the best trials, re-evaluated with the official AutoAttack.

Reads only the finalist columns of trials.parquet (robprune/io/results_schema.py); tables written
before the finalists stage have none, and the section says so instead of failing. AutoAttack's
column is headed with its label, and every gradient-masking flag is listed with the sentence
that says what it means.
"""

from __future__ import annotations

import json

import pandas as pd

__all__ = [
    "json_list",
    "FINALIST_FACTORS",
    "GAP_NOTE",
    "reranked",
    "FINALISTS_INTRO",
    "IMAGE_COLUMNS",
    "finalists_frame",
    "flag_lines",
    "flag_summary",
]

FINALISTS_INTRO = (
    "The best trials by the validation objective (the Pareto front, capped at K, for several "
    "objectives), re-evaluated from their saved pruned models on the full test split with the "
    "full attack suite and the official AutoAttack. Accuracies in %; 'APGD (ours)' is the "
    "worst case of our APGD-CE and APGD-T, not AutoAttack."
)

_COLUMNS = {
    "final_clean_acc": "clean",
    "final_robust_acc": "robust (primary)",
    "final_fgsm_acc": "FGSM",
    "final_pgd_acc": "PGD",
    "final_cw_acc": "CW",
    "final_apgd_acc": "APGD (ours)",
    "square_acc": "Square (subset)",
    "autoattack_acc": "AutoAttack",
    "autoattack_clean_acc": "clean (AutoAttack's images)",
    "autoattack_n": "AutoAttack images",
    "attack_gap": "gap: primary - AutoAttack",
    "strong_acc": "strong: APGD-CE+APGD-T (ours, its subset)",
    "strong_n": "strong images",
}
#: Columns that count test images (shown as integers, not percentages).
IMAGE_COLUMNS = ("AutoAttack images", "strong images")
#: What the gap column means (robprune.evaluation.masking.GAP_THRESHOLD, 3 points).
GAP_NOTE = (
    "'gap' is the primary attack's accuracy minus AutoAttack's on the same test images (the "
    "first N when AutoAttack ran on a subset: 'clean (AutoAttack's images)' is the clean "
    "accuracy there); a gap above 3 points is flagged primary_attack_gap when the exact "
    "McNemar test on the images only one of the two attacks broke also rejects chance "
    "(p < 0.01): the primary attack overstates robustness, and a search that selects on it can "
    "select for gradient masking. 'strong' is the trial's own strong response (our APGD-CE "
    "then APGD-T, worst case per image) on its fixed stratified subset of 'strong images'."
)
FINALIST_FACTORS = ("criterion", "ratio_rule", "sparsity_target", "finetune_method")


def json_list(text: object) -> list:
    """A JSON list kept as text in a trials column; [] for null, "None" or anything else."""
    if not isinstance(text, str) or not text or text == "None":
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


_flags = json_list


def finalists_frame(trials: pd.DataFrame) -> pd.DataFrame | str:
    """One row per evaluated finalist, best first; or why there is none."""
    if "finalist" not in trials.columns or "finalist_rank" not in trials.columns:
        return (
            "the results hold no finalists (run with eval.autoattack: finalists, or "
            "`robprune finalize EXPERIMENT`)"
        )
    chosen = trials[(trials["finalist"].fillna(0).astype(float) > 0)]
    chosen = chosen[chosen["finalist_rank"].notna()]
    if chosen.empty:
        return "no finalist has been re-evaluated yet (`robprune finalize EXPERIMENT`)"
    chosen = chosen.sort_values(["experiment", "finalist_rank"])
    label = next(
        (str(v) for v in chosen.get("autoattack_label", pd.Series(dtype=str)) if v), "AutoAttack"
    )
    scope = next((str(v) for v in chosen.get("autoattack_scope", pd.Series(dtype=str)) if v), None)
    if scope and scope != "None":
        label = f"{label} {scope}"
    out = pd.DataFrame(
        {
            "rank": chosen["finalist_rank"].astype(int),
            "trial": chosen["trial_id"],
            **{f: chosen[f] for f in FINALIST_FACTORS if f in chosen.columns},
        }
    )
    for column, title in _COLUMNS.items():
        if column in chosen.columns:
            values = chosen[column].astype(float)
            out[label if column == "autoattack_acc" else title] = (
                pd.Series(
                    [None if pd.isna(v) else int(v) for v in values],
                    dtype=object,
                    index=values.index,
                )  # fmt: skip
                if title in IMAGE_COLUMNS
                else values
            )
    out["flags"] = [
        ", ".join(f.get("code", "?") for f in _flags(t)) or "none"
        for t in chosen.get("masking_flags_json", [None] * len(chosen))
    ]
    return out.reset_index(drop=True)


def flag_lines(trials: pd.DataFrame) -> list[str]:
    """Each masking flag raised on a finalist: trial, what was measured, what it means."""
    if "masking_flags_json" not in trials.columns or "finalist" not in trials.columns:
        return []
    lines = []
    chosen = trials[trials["finalist"].fillna(0).astype(float) > 0]
    for _, row in chosen.iterrows():
        for flag in _flags(row["masking_flags_json"]):
            lines.append(
                f"{row['trial_id']}: {flag.get('code')}: {flag.get('detail')}. "
                f"{flag.get('meaning')}"
            )
    return lines


def flag_summary(trials: pd.DataFrame) -> list[str]:
    """Every masking flag raised on any trial: how many trials, and what it means."""
    if "masking_flags_json" not in trials.columns:
        return []
    counts: dict[str, int] = {}
    meanings: dict[str, str] = {}
    for text in trials["masking_flags_json"]:
        codes = {f.get("code"): f.get("meaning") for f in _flags(text)}
        for code, meaning in codes.items():
            counts[code] = counts.get(code, 0) + 1
            meanings[code] = str(meaning)
    return [
        f"{code}: {n} of {len(trials)} trials. {meanings[code]}"
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]


def reranked(trials: pd.DataFrame) -> tuple[int, int] | None:
    """(finalists whose rank changes when ranked by AutoAttack instead of the primary attack,
    finalists with both numbers); None when no finalist has both."""
    needed = ("finalist", "final_robust_acc", "autoattack_acc")
    if any(c not in trials.columns for c in needed):
        return None
    chosen = trials[trials["finalist"].fillna(0).astype(float) > 0]
    chosen = chosen[chosen["final_robust_acc"].notna() & chosen["autoattack_acc"].notna()]
    if chosen.empty:
        return None
    by_primary = chosen["final_robust_acc"].rank(ascending=False, method="min")
    by_aa = chosen["autoattack_acc"].rank(ascending=False, method="min")
    return int((by_primary != by_aa).sum()), len(chosen)
