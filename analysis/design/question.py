"""The project's question and the level every test of the report is decided at.

Kept apart from the verdict so the decomposition can test the question's interaction without
importing the words around it.
"""

from __future__ import annotations

__all__ = ["ALPHA", "QUESTION", "question_pair"]

#: Family-wise level of the report's tests (Holm over the factors and the question's pair).
ALPHA = 0.05
#: The two factors of the question, always named in the verdict when they vary.
QUESTION = ("finetune_method", "criterion")


def question_pair(names: list[str]) -> tuple[int, int] | None:
    """Indices of the fine-tuning and criterion factors among `names` (a folded factor
    counts by its first column); None unless both are there as separate factors."""
    first = [name.split("+")[0] for name in names]
    found = [first.index(c) if c in first else None for c in QUESTION]
    if found[0] is None or found[1] is None:
        return None
    return found[0], found[1]
