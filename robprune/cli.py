"""The command line's machinery: a parser whose errors are one line, and the exit codes.

Knows no command: the table that wires each subcommand to its handler is the top-level
`cli` package, which sits above every package. A cluster job uses the same machinery for
the commands it runs (`cluster.job_entry`). Exit codes: 0 success, 1 failed work, 2 bad
input (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from robprune import __version__
from robprune.errors import BadInput

__all__ = ["main_parser", "dispatch", "Command", "Handler", "DESCRIPTION", "EPILOG"]

DESCRIPTION = (
    "robprune prunes adversarially trained networks (structured criteria, MRS-guided layer "
    "ratios), fine-tunes and attacks them, searches that space with Ray Tune + Optuna on a "
    "laptop or a Ray cluster, and reports whether the pruning criterion or the fine-tuning "
    "decides robustness."
)
EPILOG = (
    "Run `robprune COMMAND --help` for a command's options and an example. "
    "Exit codes: 0 success, 1 the work failed, 2 bad input (one line on stderr)."
)

Handler = Callable[[argparse.Namespace], "int | None"]


@dataclass(frozen=True, kw_only=True)
class Command:
    """One subcommand: its handler, help and example; `submit_handler` takes over when the
    command is given --submit (a job on a cluster)."""

    name: str
    handler: Handler
    summary: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]
    submit_handler: Handler | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own bad-usage path: keep it one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def main_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    """`robprune` with one subparser per command, in the table's order."""
    parser = _Parser(
        prog="robprune",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"robprune {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for command in commands:
        p = sub.add_parser(
            command.name,
            help=command.summary,
            description=f"{command.summary}.",
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(p)
    return parser


def dispatch(commands: Sequence[Command], argv: list[str] | None = None) -> int:
    """Parse `argv` against the commands and run the chosen one's handler; its exit code."""
    args, extra = main_parser(commands).parse_known_args(argv)
    if extra:  # argparse would blame `robprune`, not the subcommand that refused them
        sys.stderr.write(
            f"robprune {args.command}: error: unrecognized arguments: {' '.join(extra)} "
            f"(see `robprune {args.command} --help`)\n"
        )
        return 2
    command = next(c for c in commands if c.name == args.command)
    submit = command.submit_handler if getattr(args, "submit", False) else None
    try:
        code = (submit or command.handler)(args)
    except BadInput as exc:
        sys.stderr.write(f"robprune {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("robprune: interrupted\n")
        return 130
    except BrokenPipeError:  # `robprune plan --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a writer killed by the signal
    return int(code or 0)
