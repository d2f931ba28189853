"""`robprune --help`, `--version` and every subcommand's help: what it does and an example."""

from __future__ import annotations

import subprocess
import sys

import pytest

import robprune
from cli import COMMANDS, build_parser, main


def test_help_says_what_the_tool_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "thin dispatcher" not in text
    assert "prunes adversarially trained networks" in text and "Ray" in text
    for command in COMMANDS:
        assert f"{command.name} {command.summary}" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"robprune {robprune.__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_each_subcommand_has_a_description_and_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([command.name, "--help"])
    text = capsys.readouterr().out
    assert "\n" not in command.summary and command.summary in " ".join(text.split())
    assert f"example:\n  {command.example}" in text
    assert command.example.startswith(f"robprune {command.name}")
    # the example parses with this command's own arguments
    build_parser().parse_args(command.example.split()[1:])


def test_parsing_imports_neither_torch_nor_ray():
    code = (
        "import sys; from cli import build_parser; "
        "build_parser().parse_args(['report', 'x']); "
        "print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_job_options_without_submit_are_refused(capsys):
    assert main(["resume", "/nonexistent", "--pip", "x"]) == 2
    assert "--pip: only with --submit" in capsys.readouterr().err


def test_the_search_drivers_import_no_ray_before_setting_its_environment():
    """Ray reads RAY_AUTH_MODE once, when first imported: a driver that imported Ray before
    `prepare_environment` started a local Ray whose GCS found no token and crashed."""
    code = (
        "import sys; import search.cli, search.run.runner, cluster.job_entry; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
