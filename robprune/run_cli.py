"""`robprune run SPEC [--set key=value ...]`: one trial, no Ray, a short table at the end."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from robprune.config import apply_overrides, load_yaml, parse_trial_config
from robprune.errors import BadInput
from robprune.formatting import fraction
from robprune.io.dense_cache import checkpoint_sha256

__all__ = ["main", "format_summary"]


def format_summary(result) -> str:
    m = result.metrics
    attack = result.attack_config[m["robust_attack"]]
    rows = [
        ("clean accuracy (test)", fraction(m["clean_acc"])),
        (
            f"robust accuracy ({attack['name']}, {attack['norm']} eps={attack['epsilon']:.4g})",
            fraction(m["robust_acc"]),
        ),
    ]
    for name, acc in m["attacks"].items():
        if name != m["robust_attack"]:
            rows.append((f"accuracy under {name}", fraction(acc)))
    if m.get("apgd_acc") is not None:
        what = f"APGD-CE + APGD-T, worst case (ours, not AutoAttack), {m['test_size']} images"
        rows.append((what, fraction(m["apgd_acc"])))
    if m.get("strong_acc") is not None:
        rows.append((f"strong: {m['strong_label']}", fraction(m["strong_acc"])))
    if m.get("autoattack_acc") is not None:
        aa = result.attack_config["autoattack"]
        rows.append(
            (
                f"{m['autoattack_label']} ({aa['norm']} eps={aa['epsilon']:.4g}, "
                f"{m.get('autoattack_scope') or str(m['autoattack_n']) + ' examples'})",
                fraction(m["autoattack_acc"]),
            )
        )
    rows += [
        (
            "dense clean / robust",
            f"{fraction(m['dense_clean_acc'])} / {fraction(m['dense_robust_acc'])}",
        ),
        *(
            [("dense checkpoint sha256", m["dense_checkpoint_sha256"])]
            if m.get("dense_checkpoint_sha256")
            else []
        ),
        ("params dense -> pruned", f"{m['params_dense']:,} -> {m['params']:,}"),
        ("MACs dense -> pruned", f"{m['flops_dense']:,} -> {m['flops']:,}"),
        ("achieved sparsity (prunable params)", fraction(m["achieved_sparsity"])),
        *(
            [("achieved sparsity (prunable MACs)", fraction(m["achieved_macs_sparsity"]))]
            if m.get("achieved_macs_sparsity") is not None
            else []
        ),
        ("fine-tuning epochs", str(m["epochs_completed"])),
        ("wall time", f"{m['wall_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def run_folder(config: Any, overrides: list[str]) -> str:
    """NAME[-OVERRIDES]-HASH: what was overridden, readable, and a short hash of the resolved
    config (cache_dir left out): the same config run again lands in the same folder."""
    plain = {k: v for k, v in config.to_dict().items() if k != "cache_dir"}
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:8]
    said = []
    for item in overrides:
        key, _, value = item.partition("=")
        said.append(f"{key.strip().rsplit('.', 1)[-1]}={value.strip()}")
    slug = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(said))[:80].strip("_")
    return "-".join(part for part in (config.name, slug, digest) if part)


def _check_output(output: Path, *, overwrite: bool) -> None:
    """An output directory that holds anything is replaced only when asked (exit 2 else)."""
    if output.exists() and not output.is_dir():
        raise BadInput(f"--output {output}: exists and is not a directory")
    held = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
    if held and not overwrite:
        raise BadInput(
            f"--output {output}: already holds {', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''} (the same config ran before?); pass "
            "--overwrite to replace it, or choose another -o"
        )


def _record_command(path: Path, args: argparse.Namespace) -> None:
    """The spec and the overrides that made this config, as comments atop config.yaml."""
    lines = [f"# robprune run {args.spec}"] + [f"#   --set {item}" for item in args.overrides]
    path.write_text("\n".join(lines) + "\n" + path.read_text())


def main(args: argparse.Namespace) -> int:
    raw = apply_overrides(load_yaml(args.spec), args.overrides)
    config = parse_trial_config(raw)  # validates before any work starts
    if config.eval.autoattack == "finalists":
        raise BadInput(
            "eval.autoattack: finalists applies to a search (its best trials, afterwards); "
            "for one trial use standard or rand, or none"
        )
    if config.dense.checkpoint is not None:
        checkpoint_sha256(config.dense.checkpoint)  # a missing file fails before any work
    output = (
        Path(args.output) if args.output else Path("runs") / run_folder(config, args.overrides)
    )
    _check_output(output, overwrite=bool(getattr(args, "overwrite", False)))
    from robprune.trial import run_trial  # torch is imported only once the input is good

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_trial(config, log=log, save_model=output / "model.pt")
    result.write(output)
    _record_command(output / "config.yaml", args)
    print(format_summary(result))
    print(
        f"result: {output / 'result.json'}  config: {output / 'config.yaml'}  "
        f"model: {output / 'model.pt'}"
    )
    return 0
