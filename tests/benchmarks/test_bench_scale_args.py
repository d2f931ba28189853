"""`benchmarks/bench_scale.py`'s arguments: a bad one is one line naming it and what is allowed,
exit code 2, before anything starts; a sampler reaches the optimize runs' spec and their rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from search.spec.parse import parse_spec
from tests.support.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_scale.py"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--modes", "optimize,random"], "--modes: 'random' is not one of optimize, grid"),
        (["--storage", "gcs"], "--storage: 'gcs' is not one of local, s3"),
        (["--sizes", "20,0"], "--sizes: '20,0'"),
        (["--sizes", "many"], "--sizes: 'many'"),
        (["--sampler", "cmaes"], "--sampler: 'cmaes' is not one of tpe"),
        (["--sampler", "tpe,random"], "--sampler: 'tpe,random'"),
        (["--modes", "grid", "--sampler", "random"], "--sampler: applies to --modes optimize"),
        (["--concurrency", "0"], "--concurrency: must be at least 1, got 0"),
        (["--epoch-s", "-1"], "--epoch-s: must be above 0"),
        (["--no-interrupt", "--interrupt-only"], "--interrupt-only: cannot be combined"),
        (["--s3-listing", "fast"], "--s3-listing: 'fast' is not one of moto, indexed"),
        (
            ["--storage", "local", "--s3-listing", "indexed"],
            "--s3-listing: applies to --storage s3",
        ),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(argv, named, tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and named in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


@pytest.fixture
def scale_measure(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import scale_measure

    return scale_measure


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsgaii"])
def test_the_sampler_reaches_the_optimize_spec(scale_measure, sampler, tmp_path):
    case = {"name": "s", "mode": "optimize", "size": 7, "epochs": 1, "concurrency": 2}
    case |= {"cache_dir": str(tmp_path), "sampler": sampler}
    spec = parse_spec(scale_measure.spec_raw(case), name="s", storage=str(tmp_path))
    assert spec.search.sampler == sampler and spec.search.num_samples == 7
    assert scale_measure.sampler_of(case) == sampler
    assert scale_measure.sampler_of({**case, "mode": "grid"}) is None
