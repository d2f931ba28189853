"""What the strong response gives up against the official AutoAttack, on a search's own trials.

For each named trial of a finished experiment: its saved pruned model, the official AutoAttack
(standard) on the trial's strong-response images, and the trial's stored `strong_acc` on the
same images. On digits the strong subset is the whole 359-image test split, which is also
what AutoAttack runs on here, so the two numbers are on the same images.

    OMP_NUM_THREADS=1 python benchmarks/strong_vs_autoattack.py EXPERIMENT TRIAL_ID ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("trials", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from robprune.attacks.autoattack import run_official_attacks
    from robprune.config import parse_trial_config
    from robprune.data import to_float
    from robprune.evaluation.evaluate_finalists import find_saved_model
    from robprune.evaluation.strong import strong_indices
    from robprune.models.serialization import load_pruned_state_dict
    from robprune.trial.builders import build_model, load_trial_data
    from robprune.trial.subsets import limited_test_split

    exp = Path(args.experiment)
    rows = pd.read_parquet(exp / "results" / "trials.parquet").set_index("trial_id")
    for trial_id in args.trials:
        row = rows.loc[trial_id]
        cfg = parse_trial_config(json.loads(row["config_json"]))
        data = load_trial_data(cfg.data, seed=cfg.seed)
        model = build_model(cfg.model, data)
        (checkpoint,) = sorted(exp.glob(f"tune/*/trial_{trial_id}/checkpoint_*/final"))
        load_pruned_state_dict(model, find_saved_model(checkpoint.parent))
        model.eval()
        test = limited_test_split(cfg.eval, data)
        picked = torch.as_tensor(strong_indices(test.y, cfg.eval.strong_images))
        x, y = to_float(test.x[picked]), test.y[picked]
        official = run_official_attacks(model, x, y, epsilon=cfg.epsilon, seed=cfg.seed)
        print(
            f"{trial_id}: {len(y)} images  primary {100 * row['strong_primary_acc']:.2f}%  "
            f"strong ({row['strong_suite']}) {100 * row['strong_acc']:.2f}%  "
            f"{official.label} {100 * official.accuracy:.2f}%  "
            f"(after its APGD-CE {100 * official.stages['apgd-ce']:.2f}%, APGD-T "
            f"{100 * official.stages['apgd-t']:.2f}%)  strong - AutoAttack "
            f"{100 * (row['strong_acc'] - official.accuracy):+.2f} points, "
            f"AutoAttack {official.wall_s:.0f} s"
        )


if __name__ == "__main__":
    main()
