"""Exceptions that the CLI turns into exit codes: 2 for bad input, 1 for failed work.

Torch-free so every subcommand can share them.
"""

from __future__ import annotations

__all__ = ["BadInput", "ConfigError", "DataError", "TrialFailed"]


class BadInput(ValueError):
    """Input the user can fix: printed as one line on stderr, exit code 2."""


class ConfigError(BadInput):
    """A config or spec value is wrong. The message starts with the key path."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class DataError(BadInput):
    """A data set is missing or corrupt; the message says where files were expected."""


class TrialFailed(RuntimeError):
    """The work of a trial failed (NaN loss, pruning could not meet the budget...)."""
