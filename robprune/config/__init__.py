"""The trial config: typed, validated, torch-free (the search's spec validator imports it
before Ray starts).

This package face is `robprune.config.trial` (the sections and `parse_trial_config`); the
other modules hold one job each: `names` (the allowed registry names, read by the registries
and the validator alike), `typed_mapping` (the one validator), `spec_yaml` (YAML 1.2 and
`--set` overrides), `data` (the `data` section), `factors` (the experiment's factors).
"""

from __future__ import annotations

from robprune.config.trial import *  # noqa: F403  (the face: exactly trial's __all__)
from robprune.config.trial import __all__  # noqa: F401
