"""Measure `attack_bn`: the demo's dense PGD-AT recipe on digits with training attacks
generated in train mode (the reference PGD-AT code) and in eval mode, same seeds.

    python tools/measure_attack_bn.py --seeds 0 1 --cache /tmp/attack-bn-cache

Prints one line per (seed, mode): clean, PGD-10 and APGD-CE accuracy on the digits test split
(360 images). Figures in docs/decisions.md ("attack_bn").
"""

from __future__ import annotations

import argparse

from robprune.trial import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cache", default="/tmp/attack-bn-cache")
    args = parser.parse_args()
    for seed in args.seeds:
        for mode in ("train", "eval"):
            config = {
                "seed": seed,
                "device": "cpu",
                "cache_dir": args.cache,
                "data": {"dataset": "digits"},
                "model": {"arch": "digits_cnn"},
                "dense": {"method": "pgd_at", "epochs": 8, "lr": 0.05, "attack_bn": mode},
                "threat": {"train_steps": 5, "eval_steps": 10},
                "prune": {"sparsity": 0.0},
                "finetune": {"method": "none"},
                "eval": {"attacks": ["pgd10", "apgd_ce"], "primary": "pgd10"},
            }
            m = run_trial(config).metrics
            print(
                f"seed {seed} attack_bn {mode}: clean {m['clean_acc']:.3f} "
                f"pgd10 {m['pgd_acc']:.3f} apgd_ce {m['attacks']['apgd_ce']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
