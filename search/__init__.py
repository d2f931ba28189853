"""Ray Tune + Optuna search over an experiment spec (DESIGN §3-§5, §7).

spec (YAML -> validated Spec), space (define-by-run space, grid), searcher (persisted Optuna
study), trainable (the Tune function around `robprune.trial.run_trial`), experiment (directory
layout and storage), runner (Ray, dense stage, Tuner, restore, extend), export (Parquet),
tensorboard, progress, demo, cli (`robprune search|resume|export|demo`). Modules import Ray
lazily where they can, so validating a spec never starts it.
"""
