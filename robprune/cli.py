"""The `robprune` command line: one table of subcommands, each imported only when called.

Lazy imports keep `robprune report` fast and free of torch and Ray. Exit codes:
0 success, 1 failed work, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from robprune import __version__
from robprune import cli_args as options
from robprune.errors import BadInput

__all__ = ["main", "build_parser", "Command", "COMMANDS"]

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


@dataclass(frozen=True, kw_only=True)
class Command:
    """One subcommand: its handler ("module:function", imported lazily), help and example;
    `submit_handler` takes over when the command is given --submit (a job on a cluster)."""

    name: str
    handler: str
    summary: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]
    submit_handler: str | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own bad-usage path: keep it one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


COMMANDS: list[Command] = [
    Command(
        name="demo",
        handler="search.cli:demo_main",
        summary="offline default: local Ray, digits, a small grid, then a report",
        example="robprune demo --storage ./experiments",
        arguments=options.demo_args,
    ),
    Command(
        name="run",
        handler="robprune.run_cli:main",
        summary="one trial end to end (prune, fine-tune, attack), no Ray",
        example="robprune run examples/digits.yaml --set prune.criterion=taylor",
        arguments=options.run_args,
    ),
    Command(
        name="search",
        handler="search.cli:search_main",
        summary="Ray Tune + Optuna search over a spec, here or on a Ray cluster you are part of",
        example="robprune search examples/digits-search.yaml --storage ./experiments",
        arguments=options.search_args,
    ),
    Command(
        name="plan",
        handler="search.plan.cli:plan_main",
        summary="what a search will run and cost (trials, dense models, hours), without Ray",
        example="robprune plan examples/digits-search.yaml --workers 8",
        arguments=options.plan_args,
    ),
    Command(
        name="resume",
        handler="search.cli:resume_main",
        submit_handler="cluster.cli:resume_main",
        summary="continue an experiment after a crash, Ctrl-C or `stop` (here or --submit)",
        example="robprune resume s3://bucket/exps/NAME --submit --address http://HEAD:8265",
        arguments=options.resume_args,
    ),
    Command(
        name="export",
        handler="search.cli:export_main",
        summary="(re)write EXPERIMENT/results/{trials,epochs,layers}.parquet",
        example="robprune export experiments/digits-search-20260101-120000",
        arguments=options.experiment_arg,
    ),
    Command(
        name="finalize",
        handler="search.run.finalize:finalize_main",
        summary="the official AutoAttack and the full attack suite on the best trials",
        example="robprune finalize experiments/NAME --top 5",
        arguments=options.finalize_args,
    ),
    Command(
        name="report",
        handler="analysis.cli:main",
        summary="ablation report (variance shares, verdict, figures) from Parquet results",
        example="robprune report experiments/NAME",
        arguments=options.report_args,
    ),
    Command(
        name="submit",
        handler="cluster.cli:submit_main",
        summary="submit a search to a Ray cluster as a job (Ray Jobs API) and return at once",
        example="robprune submit spec.yaml --address http://HEAD:8265 --storage s3://b/exps",
        arguments=options.submit_args,
    ),
    Command(
        name="jobs",
        handler="cluster.cli:jobs_main",
        summary="robprune's jobs on a Ray cluster, one line each",
        example="robprune jobs --address http://HEAD:8265",
        arguments=options.address,
    ),
    Command(
        name="status",
        handler="cluster.cli:status_main",
        summary="an experiment's state (here, on storage, or a cluster job's): trials, best "
        "validation value, last error, where its results and report are",
        example="robprune status experiments/digits-search-20260101-120000",
        arguments=options.status_args,
    ),
    Command(
        name="list",
        handler="search.status_cli:list_main",
        summary="the experiments under a folder (or URI), one line each",
        example="robprune list ./experiments",
        arguments=options.list_args,
    ),
    Command(
        name="logs",
        handler="cluster.cli:logs_main",
        summary="a job's output (the search's progress lines)",
        example="robprune logs robprune-digits-1a2b3c --follow --address http://HEAD:8265",
        arguments=options.logs_args,
    ),
    Command(
        name="stop",
        handler="cluster.cli:stop_main",
        summary="stop a job; its experiment stays resumable with `resume --submit`",
        example="robprune stop robprune-digits-1a2b3c --address http://HEAD:8265",
        arguments=options.job_args,
    ),
]


def build_parser() -> argparse.ArgumentParser:
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
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.summary,
            description=f"{command.summary}.",
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:  # argparse would blame `robprune`, not the subcommand that refused them
        sys.stderr.write(
            f"robprune {args.command}: error: unrecognized arguments: {' '.join(extra)} "
            f"(see `robprune {args.command} --help`)\n"
        )
        return 2
    command = next(c for c in COMMANDS if c.name == args.command)
    submit = command.submit_handler if getattr(args, "submit", False) else None
    module_name, func_name = (submit or command.handler).split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        code = handler(args)
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


if __name__ == "__main__":
    raise SystemExit(main())
