"""Ray Tune + Optuna search over an experiment spec (DESIGN §3-§5, §7).

The spec: spec (YAML -> validated Spec), dists (distribution leaves), settings (the search and
resources sections), conditions (conditional parameters, dense-model paths), paths (dotted key
paths). Running it: session (Ray, `ray_session()`), dense_stage, space (define-by-run space,
grid), searcher (persisted Optuna study), trainable (the Tune function around
`robprune.trial.run_trial`), tuner (new or restored Tuner), runner (entry points), outcome
(export, summary, exit code). Surviving stops: reconcile (snapshot vs journal before a
restore), interrupt (Ctrl-C), ownership (driver record, a dead driver's Ray processes),
storage_check (bad storage is bad input). Storage and results: experiment (directory layout),
export (Parquet), tensorboard, progress, demo, cli (`robprune search|resume|export|demo`).
Modules import Ray lazily where they can, so validating a spec never starts it.
"""
