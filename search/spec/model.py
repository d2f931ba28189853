"""The validated experiment spec (docs/architecture.md): the `Spec` record and what it answers.

A `Spec` is what `search.spec.parse` returns: the trial part with `Dist` objects at varying
leaves, the search and resources sections, and the fixed values (from the spec, else the
trial's own defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robprune.config import parse_trial_config
from robprune.config.spec_yaml import dump_yaml
from search.spec.conditions import CONDITIONS, is_applicable
from search.spec.dists import Dist
from search.spec.paths import get_path
from search.spec.settings import Resources, SearchSettings

__all__ = ["FIXED_TRIAL_KEYS", "GridRepeats", "Spec", "trial_defaults"]

#: Trial keys that must be fixed: they name or place things rather than vary the science.
FIXED_TRIAL_KEYS = ("name", "device", "cache_dir")


@dataclass(frozen=True)
class GridRepeats:
    """Cells of a grid that resolve to an earlier cell's config (left out under dedupe)."""

    cells: int
    """Cells of the factorial before any is left out."""
    repeats: tuple[tuple[dict[str, Any], dict[str, Any]], ...]
    """(left-out cell, the earlier cell it resolves like), in grid order."""
    kept: tuple[dict[str, Any], ...]
    """The other cells, each a distinct configuration, in grid order."""

    def describe(self, dedupe: bool = True) -> str:
        """One line: how many cells repeat another (with the first example) and what the
        search does with them."""
        if not self.repeats:
            return "every grid cell is a distinct configuration"
        if not dedupe:
            return (
                f"{len(self.repeats)} of the {self.cells} grid cells resolve to the config of "
                "an earlier cell: trained again (search.dedupe: false)"
            )
        cell, original = self.repeats[0]
        differs = {k: v for k, v in cell.items() if original.get(k) != v}
        same = {k: original[k] for k in differs if k in original}
        return (
            f"{len(self.repeats)} of the {self.cells} grid cells resolve to the config of an "
            f"earlier cell (e.g. {_values(differs)} runs as {_values(same)}): left out, not "
            "trained twice (search.dedupe)"
        )


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "the same"


@dataclass(kw_only=True)
class Spec:
    """A validated spec. `template` is the trial part with `Dist` objects at varying leaves."""

    name: str
    storage: str
    resources: Resources
    search: SearchSettings
    template: dict[str, Any]
    dists: list[Dist]
    raw: dict[str, Any] = field(repr=False)
    #: grid mode: every trial as (cell, replicate), built once when the spec is parsed
    grid: list[tuple[dict[str, Any], int]] = field(default_factory=list, repr=False)
    #: grid mode: cells that resolve like an earlier cell (`search.spec.grid.GridRepeats`)
    grid_repeats: GridRepeats | None = field(default=None, repr=False)

    @property
    def cpu(self) -> float:
        return self.resources.cpu

    @property
    def gpu(self) -> float:
        return self.resources.gpu

    def ordered_dists(self) -> list[Dist]:
        """Governing parameters first, so conditional ones can see their value."""
        governing = {gov for gov, _ in CONDITIONS.values()}
        return sorted(self.dists, key=lambda d: (d.path not in governing, self.dists.index(d)))

    def dist(self, path: str) -> Dist | None:
        return next((d for d in self.dists if d.path == path), None)

    def fixed_value(self, path: str) -> Any:
        """The value of a fixed leaf: from the spec, else the trial default."""
        node: Any = self.template
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return get_path(trial_defaults(), path)
            node = node[part]
        return node

    def applies(self, path: str, values: Mapping[str, Any]) -> bool:
        """Whether parameter `path` exists given the values chosen so far."""
        return is_applicable(path, values, self.fixed_value)

    def max_epochs(self) -> int:
        """The largest number of fine-tuning epochs a trial may run (ASHA's max_t)."""
        d = self.dist("finetune.epochs")
        if d is None:
            return max(1, int(self.fixed_value("finetune.epochs")))
        values = [int(v) for v in d.args if isinstance(v, int | float)]
        return max([1, *values])

    def to_yaml(self) -> str:
        return dump_yaml(self.raw)


def trial_defaults() -> dict[str, Any]:
    """The trial config's defaults as a plain dict (CONTRACTS.md), from the trial itself."""
    return parse_trial_config({}).to_dict()
