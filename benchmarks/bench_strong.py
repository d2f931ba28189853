"""The strong suite (APGD-CE then APGD-T, worst case per image): ours against the official code.

Same model, same images, same order (APGD-T only on what APGD-CE left correct), in one
process: robprune's `strong_evaluation` and `pyautoattack` with `attacks_to_run =
["apgd-ce", "apgd-t"]` (its standard settings: 100 steps, 9 targets). Then ours with fewer
APGD-T targets, and the official standard AutoAttack (adds FAB-T and Square) for the strength
each setting gives up. CPU time of this process (one thread), so a shared machine's load does
not move the ratios much.

    OMP_NUM_THREADS=1 python benchmarks/bench_strong.py [--epochs 6] [--images 359] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _model(epochs: int, epsilon: float, method: str):
    from robprune.config import ModelConfig, TrainRecipe
    from robprune.data import load_data
    from robprune.training.losses import AdversarialSetting
    from robprune.training.trainer import Trainer
    from robprune.trial.builders import build_model

    torch.manual_seed(0)
    data = load_data("digits", val_fraction=0.1, seed=0)
    model = build_model(ModelConfig(arch="digits_cnn"), data)
    steps = 3 if method == "pgd_at" else 0
    trainer = Trainer(
        recipe=TrainRecipe(method=method, epochs=epochs, lr=0.05, batch_size=64),
        model=model,
        train=data.train,
        adversarial=AdversarialSetting(
            epsilon=epsilon, step_size=epsilon / 4, steps=max(steps, 1), norm="linf", beta=0.0
        ),
        augment=False,
        device=torch.device("cpu"),
        seed=0,
    )
    for _ in range(epochs):
        trainer.run_epoch()
    return model.eval(), data.test


def _timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=359)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from robprune.attacks.autoattack import run_official_attacks
    from robprune.config import ResolvedThreat
    from robprune.data import TensorSplit, to_float
    from robprune.evaluation.strong import strong_evaluation

    model, test = _model(args.epochs, args.epsilon, "pgd_at")
    x, y = to_float(test.x[: args.images]), test.y[: args.images]
    split = TensorSplit(x=x, y=y)
    threat = ResolvedThreat(
        norm="linf", epsilon=args.epsilon, step_size=args.epsilon / 4, train_steps=3,
        eval_steps=20, l2_epsilon=0.5,
    )  # fmt: skip
    dev = torch.device("cpu")
    rows = {}
    for targets in (9, 3, 1):
        out, cpu = _timed(
            lambda t=targets: strong_evaluation(
                model, split, threat=threat, targets=t, batch_size=256, device=dev
            )
        )
        rows[f"ours_t{targets}"] = {"acc": out.accuracy, "cpu_s": cpu}
    official, cpu = _timed(
        lambda: run_official_attacks(
            model, x, y, attacks=["apgd-ce", "apgd-t"], epsilon=args.epsilon, batch_size=256
        )
    )
    rows["official_apgd_ce+apgd_t9"] = {"acc": official.accuracy, "cpu_s": cpu}
    full, cpu = _timed(lambda: run_official_attacks(model, x, y, epsilon=args.epsilon))
    rows["official_autoattack_standard"] = {"acc": full.accuracy, "cpu_s": cpu}
    ratio = rows["official_apgd_ce+apgd_t9"]["cpu_s"] / rows["ours_t9"]["cpu_s"]
    print(f"{len(y)} digits test images, eps {args.epsilon}, digits_cnn PGD-AT {args.epochs} ep")
    for name, row in rows.items():
        print(f"{name:<32} robust acc {100 * row['acc']:6.2f}%  CPU {row['cpu_s']:7.2f} s")
    print(f"official / ours CPU time at equal settings (9 targets): {ratio:.2f}")
    if args.json:
        print(json.dumps({"rows": rows, "official_over_ours": ratio}))


if __name__ == "__main__":
    main()
