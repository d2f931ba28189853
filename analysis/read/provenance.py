"""Where the numbers come from: the attack behind them and the sampler that chose the trials.

Every robustness number must say which attack produced it. The per-trial provenance columns
(`config_json`, `attack_config_json`) are large strings, so only the first row group of each
source is read (the attack suite is fixed per experiment; sources that differ are all listed),
once, by `analysis.read.load.load_results` into `ResultSet.attacks`. An adaptive sampler
(the spec's `search.mode: optimize` with a sampler other than random) makes the design depend
on the outcomes; the samplers are read from the spec.yaml beside each source's results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml

__all__ = ["adaptive_samplers", "describe_attacks"]

_COLUMNS = ("config_json", "attack_config_json")
_ADAPTIVE_SAMPLERS = ("tpe", "gp", "nsgaii")


def _describe(config: dict, attacks: dict) -> str | None:
    primary = config.get("eval", {}).get("primary")
    spec = attacks.get(primary) if primary else None
    if not spec:
        return None
    steps = spec.get("steps")
    parts = [f"{spec.get('norm', '?')}", f"eps={spec.get('epsilon', float('nan')):.4g}"]
    if steps:
        parts.append(f"{steps} steps")
    if spec.get("step_size"):
        parts.append(f"step {spec['step_size']:.4g}")
    if spec.get("restarts", 1) > 1:
        parts.append(f"{spec['restarts']} restarts")
    return f"{primary} ({', '.join(parts)})"


def describe_attacks(trial_files: list[str | Path]) -> list[str]:
    """One description per distinct primary attack, e.g. 'pgd20 (linf, eps=0.03137, 20 steps)'."""
    found: list[str] = []
    for path in trial_files:
        try:
            pf = pq.ParquetFile(path)
            if pf.metadata.num_row_groups == 0 or not set(_COLUMNS) <= set(pf.schema_arrow.names):
                continue  # a table without provenance (another tool, an earlier robprune)
            table = pf.read_row_group(0, columns=list(_COLUMNS))
        except (OSError, KeyError, ValueError):
            continue
        for config_text, attack_text in zip(
            table.column("config_json").to_pylist(),
            table.column("attack_config_json").to_pylist(),
            strict=True,
        ):
            if not config_text or not attack_text:
                continue
            try:
                text = _describe(json.loads(config_text), json.loads(attack_text))
            except (ValueError, TypeError, AttributeError):
                text = None
            if text and text not in found:
                found.append(text)
            break
    return found


def adaptive_samplers(experiment_dirs: list[Path | None]) -> tuple[str, ...]:
    """Adaptive samplers of the experiments whose spec.yaml is beside their results."""
    found: list[str] = []
    for folder in experiment_dirs:
        path = (folder or Path(".")) / "spec.yaml"
        try:
            spec = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, yaml.YAMLError):
            continue
        search = spec.get("search") if isinstance(spec, dict) else None
        if not isinstance(search, dict) or search.get("mode", "optimize") != "optimize":
            continue
        sampler = str(search.get("sampler") or "tpe")
        if sampler in _ADAPTIVE_SAMPLERS and sampler not in found:
            found.append(sampler)
    return tuple(found)
