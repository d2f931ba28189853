"""`robprune run SPEC [--set key=value ...]`: one trial, no Ray, a short table at the end."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from robprune.config import apply_overrides, load_yaml, parse_trial_config

__all__ = ["main", "format_summary"]


def format_summary(result) -> str:
    m = result.metrics
    attack = result.attack_config[m["robust_attack"]]
    rows = [
        ("clean accuracy (test)", f"{m['clean_acc']:.4f}"),
        (
            f"robust accuracy ({attack['name']}, {attack['norm']} eps={attack['epsilon']:.4g})",
            f"{m['robust_acc']:.4f}",
        ),
    ]
    for name, acc in m["attacks"].items():
        if name != m["robust_attack"]:
            rows.append((f"accuracy under {name}", f"{acc:.4f}"))
    rows += [
        ("dense clean / robust", f"{m['dense_clean_acc']:.4f} / {m['dense_robust_acc']:.4f}"),
        ("params dense -> pruned", f"{m['params_dense']:,} -> {m['params']:,}"),
        ("MACs dense -> pruned", f"{m['flops_dense']:,} -> {m['flops']:,}"),
        ("achieved sparsity (prunable params)", f"{m['achieved_sparsity']:.4f}"),
        ("fine-tuning epochs", str(m["epochs_completed"])),
        ("wall time", f"{m['wall_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    raw = apply_overrides(load_yaml(args.spec), args.overrides)
    config = parse_trial_config(raw)  # validates before any work starts
    from robprune.trial import run_trial  # torch is imported only once the input is good

    output = Path(args.output or Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_trial(config, log=log, save_model=output / "model.pt")
    result.write(output)
    print(format_summary(result))
    print(
        f"result: {output / 'result.json'}  config: {output / 'config.yaml'}  "
        f"model: {output / 'model.pt'}"
    )
    return 0
