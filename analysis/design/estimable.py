"""`NotEstimable`: why a quantity could not be estimated from the trials at hand.

Analyses return their result or a `NotEstimable`; the report states the reason instead of
failing. A small typed value rather than a bare string, so a result that happens to be text
can never be mistaken for a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NotEstimable"]


@dataclass(frozen=True)
class NotEstimable:
    """The reason, as a clause that completes 'could not be estimated: ...'."""

    reason: str

    def __str__(self) -> str:
        return self.reason
