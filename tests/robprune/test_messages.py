"""Messages a newcomer meets first: each one says what is wrong, where, and what is allowed.

Each case is bad input: one line on stderr naming the file, key or subcommand, exit 2, and
nothing written.
"""

from __future__ import annotations

import os

import pytest

from cli import main as cli_main
from search.plan.plan import _device_words
from search.run.session import LOCAL_ENV, prepare_environment

SEARCH = "search: {mode: optimize, num_samples: 4}\n"


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and not captured.out, captured
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("command", ["run", "plan", "search"])
def test_an_empty_spec_is_refused(tmp_path, capsys, command, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("", "# only a comment\n", "\n\n"):
        (tmp_path / "empty.yaml").write_text(text)
        _one_line_error(capsys, [command, "empty.yaml"], "empty.yaml: the spec is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]  # nothing written


def test_a_folder_given_as_the_spec(tmp_path, capsys):
    err = _one_line_error(capsys, ["run", str(tmp_path)], "is a directory")
    assert "not found" not in err


def test_a_misspelt_key_is_named_before_what_it_causes(tmp_path, capsys):
    # `sparsty` leaves the spec without a distribution: the typo is the error, not the mode
    (tmp_path / "s.yaml").write_text("name: s\nprune: {sparsty: {choice: [0.5]}}\n" + SEARCH)
    (tmp_path / "f.yaml").write_text("name: f\nprune: {sparsty: 0.5}\n" + SEARCH)
    for name in ("s.yaml", "f.yaml"):
        err = _one_line_error(capsys, ["plan", str(tmp_path / name)], "prune.sparsty")
        assert "unknown key" in err and "needs at least one distribution" not in err


@pytest.mark.parametrize("command", ["plan", "run", "report", "status"])
def test_unrecognized_arguments_name_the_subcommand(capsys, command):
    _one_line_error(
        capsys,
        [command, "x.yaml", "--bogus"],
        f"robprune {command}: error: unrecognized arguments: --bogus",
        f"robprune {command} --help",
    )


def test_robprune_sets_the_ray_environment_itself(monkeypatch):
    for key in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        monkeypatch.delenv(key, raising=False)
    prepare_environment(local=False)  # a cluster's auth mode is the cluster's
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0" and "RAY_AUTH_MODE" not in os.environ
    prepare_environment(local=True)
    assert os.environ["RAY_AUTH_MODE"] == LOCAL_ENV["RAY_AUTH_MODE"] == "token"
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    prepare_environment(local=True)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # what the user set wins


def test_a_device_is_not_named_twice():
    assert _device_words("cpu (cpu)") == "cpu"
    assert _device_words("cuda (NVIDIA H100)") == "cuda (NVIDIA H100)"
