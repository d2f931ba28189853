"""The repository's root, for tests that read its examples, docs, tools or source."""

from __future__ import annotations

from pathlib import Path

#: The checkout the tests run from (tests/support/ is two levels below it).
ROOT = Path(__file__).resolve().parents[2]
