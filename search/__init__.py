"""Ray Tune + Optuna search over an experiment spec (docs/architecture.md).

Five sub-packages (and `search.plan`, counts and cost without Ray):

- `search.spec`: the spec and its space. parse (YAML -> validated `Spec`), model (the `Spec`
  record), dists, settings, conditions, paths, trial (concrete trial configs), grid (the full
  factorial, the dense models a search needs), space (Optuna's define-by-run space).
- `search.state`: the experiment on storage. storage (the one reader and writer of experiment
  files, local or s3://), experiment (directory layout, runs), trial_files (a trial's files in
  its checkpoints), status_file (status.json), storage_check (bad storage is bad input).
- `search.results`: export (Parquet), tensorboard.
- `search.run`: running it. session (Ray), dense_stage, study (the Optuna journal, sampler),
  tune_internals (every Ray/Optuna private member used, with the versions it was tested
  against: the persisted `StudySearch`, Tune snapshot edits), trainable (the Tune function
  around `robprune.trial.run_trial`), tasks, tuner, progress, runner (entry points), outcome
  (export, summary, exit code), reconcile (snapshot vs journal before a restore), interrupt
  (Ctrl-C), ownership (driver record, a dead driver's Ray processes).
- `search.finalists`: the finalists stage. rules (the spec's finalist settings), choose (the
  best by the validation objective), evaluate (as Ray tasks), store (their results in the
  experiment), present (the finalists table), finalize (`robprune finalize`).

`search.cli` (`robprune search|resume|export|demo`) and `search.demo` sit on top. Validating a
spec never imports Ray: the modules that need it are imported once a search runs.
"""
