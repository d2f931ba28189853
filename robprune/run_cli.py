"""`robprune run SPEC [--set key=value ...]`: one trial, no Ray, a short table at the end."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from robprune.config import apply_overrides, load_yaml, parse_trial_config
from robprune.errors import BadInput

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
    if m.get("apgd_acc") is not None:
        what = f"APGD-CE + APGD-T, worst case (ours, not AutoAttack), {m['test_size']} images"
        rows.append((what, f"{m['apgd_acc']:.4f}"))
    if m.get("strong_acc") is not None:
        rows.append((f"strong: {m['strong_label']}", f"{m['strong_acc']:.4f}"))
    if m.get("autoattack_acc") is not None:
        aa = result.attack_config["autoattack"]
        rows.append(
            (
                f"{m['autoattack_label']} ({aa['norm']} eps={aa['epsilon']:.4g}, "
                f"{m.get('autoattack_scope') or str(m['autoattack_n']) + ' examples'})",
                f"{m['autoattack_acc']:.4f}",
            )
        )
    rows += [
        ("dense clean / robust", f"{m['dense_clean_acc']:.4f} / {m['dense_robust_acc']:.4f}"),
        *(
            [("dense checkpoint sha256", m["dense_checkpoint_sha256"])]
            if m.get("dense_checkpoint_sha256")
            else []
        ),
        ("params dense -> pruned", f"{m['params_dense']:,} -> {m['params']:,}"),
        ("MACs dense -> pruned", f"{m['flops_dense']:,} -> {m['flops']:,}"),
        ("achieved sparsity (prunable params)", f"{m['achieved_sparsity']:.4f}"),
        *(
            [("achieved sparsity (prunable MACs)", f"{m['achieved_macs_sparsity']:.4f}")]
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


def main(args: argparse.Namespace) -> int:
    raw = apply_overrides(load_yaml(args.spec), args.overrides)
    config = parse_trial_config(raw)  # validates before any work starts
    if config.eval.autoattack == "finalists":
        raise BadInput(
            "eval.autoattack: finalists applies to a search (its best trials, afterwards); "
            "for one trial use standard or rand, or none"
        )
    if config.dense.checkpoint is not None:
        from robprune.io.dense_cache import checkpoint_sha256

        checkpoint_sha256(config.dense.checkpoint)  # a missing file fails before any work
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
