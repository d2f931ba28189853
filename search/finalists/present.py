"""Presenting finalists: the plain-text table of the stored finalist evaluations."""

from __future__ import annotations

from typing import Any

from robprune.formatting import fraction
from search.finalists.store import is_current, read_result, read_selection
from search.state.experiment import Experiment

__all__ = ["finalists_table", "images"]


def images(n: Any) -> str:
    """' (on N test images)' after a robust accuracy, or nothing when N is unknown."""
    return "" if n is None else f" (on {int(n)} test images)"


def finalists_table(exp: Experiment) -> str:
    """A plain-text table of the stored finalists (for the terminal)."""
    selection = read_selection(exp)
    lines = []
    for trial_id, rank in (selection.ranks() if selection is not None else {}).items():
        result = read_result(exp, trial_id)
        if result is None or not is_current(result, selection):
            lines.append(f"{rank:>2}  {trial_id:<12}  (not evaluated)")
            continue
        m = result.metrics
        flags = ", ".join(f["code"] for f in m.get("masking_flags", [])) or "none"
        lines.append(
            f"{rank:>2}  {trial_id:<12}  clean {fraction(m.get('clean_acc'))}  "
            f"{m['robust_attack']} {fraction(m.get('robust_acc'))}  APGD (ours) "
            f"{fraction(m.get('apgd_acc'))}{images(m.get('test_size'))}  "
            f"{m.get('autoattack_label')} {fraction(m.get('autoattack_acc'))}"
            f"{images(m.get('autoattack_n'))}  flags: {flags}"
        )
    header = "finalists (full test split):"
    return "\n".join([header, *lines]) if lines else "finalists: none"
