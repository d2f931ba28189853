"""`robprune demo`: the offline default. No arguments, no data, no cluster.

A local Ray, a small balanced grid on scikit-learn's bundled digits (`digits_cnn`, five
prunable groups) that crosses pruning criteria, fine-tuning methods, four ratio rules (uniform,
global, mrs, mrs_band) and two sparsities; then the Parquet tables and, when the analysis
package is importable, the ablation report. Sized to finish within three minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from robprune.config.spec_yaml import load_yaml_text
from search.run.runner import run_search
from search.spec.parse import parse_spec

__all__ = ["DEMO_SPEC", "demo_spec", "run_demo", "demo_exit_code"]

DEMO_SPEC = """\
# robprune demo: 2 criteria x 2 fine-tuning methods x 4 ratio rules x 2 sparsities on digits.
name: demo
data: {dataset: digits}
model: {arch: digits_cnn}
dense: {method: pgd_at, epochs: 8, lr: 0.05}
threat: {train_steps: 5, eval_steps: 10}  # pgd_acc is pgd10, as evaluated
prune:
  sparsity: {choice: [0.5, 0.8]}
  criterion: {choice: [l1, taylor]}
  ratio: {choice: [uniform, global, mrs, mrs_band]}
  mrs: {estimator: first_order, temperature: 1.0, band: 0.15, num_examples: 128}
  record_mrs: [first_order]
finetune:
  method: {choice: [ce, pgd_at]}
  epochs: 2
  lr: 0.02
  schedule: cosine
eval: {attacks: [fgsm, pgd10], primary: pgd10, epoch_attack: pgd5, epoch_subset: 180,
       strong_images: 180, strong_targets: 1}  # the strong response, cut to fit the demo
search:
  mode: grid
  seeds: 1
  objectives: [robust_acc:max, clean_acc:max]
resources: {cpu: 1, gpu: 0}
"""


def demo_spec(storage: str) -> Any:
    raw = load_yaml_text(DEMO_SPEC, source="demo spec")
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    return parse_spec(raw, name=name, storage=storage)


def _report(results_dir: str, out_dir: str, stream: TextIO) -> tuple[str | None, bool]:
    """The ablation report through the analysis package's CLI entry, if it is there.

    Returns (the report directory or None, whether the report failed).
    """
    try:
        from analysis.cli import main as report_main
    except ImportError:
        print("report: the analysis package is not installed; skipped", file=stream)
        return None, False
    args = argparse.Namespace(results=[results_dir], output=out_dir, response=None)
    try:
        code = report_main(args)
    except Exception as exc:  # noqa: BLE001 - the search itself succeeded; say what failed
        print(f"report: failed: {type(exc).__name__}: {exc}", file=stream)
        return None, True
    if code:
        print(f"report: failed with exit code {code}", file=stream)
        return None, True
    return out_dir, False


def run_demo(storage: str = "./experiments", stream: TextIO | None = None) -> int:
    stream = stream or sys.stdout
    start = time.perf_counter()
    spec = demo_spec(storage)
    outcome = run_search(spec, stream=stream)
    results = outcome.results_dir
    report_dir, report_failed = _report(
        results, str(Path(outcome.experiment.location) / "report"), stream
    )
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s", file=stream)
    print(f"  experiment: {outcome.experiment.location}", file=stream)
    print(f"  results:    {results}", file=stream)
    if report_dir:
        print(f"  report:     {report_dir}", file=stream)
    return demo_exit_code(outcome.exit_code, report_failed)


def demo_exit_code(search_code: int, report_failed: bool) -> int:
    """The search's exit code; a crashed report turns success into failure (1)."""
    return 1 if report_failed and search_code == 0 else search_code
