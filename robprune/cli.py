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


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any leaf of the spec, e.g. --set finetune.epochs=3 (repeatable)",
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML trial spec (fixed values only)")
    _overrides(p)
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="directory for result.json, config.yaml and model.pt (default: runs/NAME-..., "
        "named after the --set overrides and a short hash of the resolved config)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what the output directory holds (without it, an existing one is refused)",
    )


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec (values or distributions)")
    p.add_argument(
        "--address", default=None, help="Ray to join: auto or HOST:PORT (default: a local Ray)"
    )
    p.add_argument("--storage", default=None, help="local path or URI (s3://...)")
    p.add_argument("--name", default=None, help="experiment name (default: spec name + time)")
    _resume_flag(p)
    _overrides(p)
    _plan_flag(p)


def _plan_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plan",
        action="store_true",
        help="print what the search would run and cost (as `robprune plan`) and stop",
    )
    _plan_options(p)


def _resume_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        action="store_true",
        help="if the experiment (--storage/--name) exists, continue it instead of refusing: "
        "running the same command again after a lost driver or head finishes the search",
    )


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=None,
        help="the head's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
        "then $RAY_ADDRESS)",
    )


def _job_env_args(p: argparse.ArgumentParser) -> None:
    """What the submitted job runs with (shared by `submit` and `resume --submit`)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--working-dir",
        default=".",
        help="directory uploaded to the cluster and run from (default: .)",
    )
    where.add_argument(
        "--installed",
        action="store_true",
        help="upload nothing: robprune is installed on the cluster's nodes",
    )
    p.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="extra pip requirement installed for the job (repeatable)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the job (repeatable; not for secrets: Ray shows "
        "them in the job's details; give credentials to the nodes instead)",
    )
    p.add_argument(
        "--python",
        default="python",
        help="the interpreter on the cluster's nodes (default: python)",
    )
    p.add_argument(
        "--shared-paths",
        action="store_true",
        help="local paths in the spec (storage, data.data_dir) are a filesystem that every "
        "node mounts: do not refuse them on a multi-node cluster",
    )


def _submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec, validated here before submission")
    _address(p)
    p.add_argument(
        "--storage", default=None, help="where the experiment lives: s3://bucket/prefix or a path"
    )
    p.add_argument("--name", default=None, help="experiment name (default: spec name + time)")
    _resume_flag(p)
    _overrides(p)
    _job_env_args(p)
    _plan_flag(p)


def _resume_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment directory or URI")
    p.add_argument("--extend", type=int, default=0, metavar="N", help="add N more trials")
    p.add_argument(
        "--address",
        default=None,
        help="without --submit: Ray to join (auto or HOST:PORT); with --submit: the head's "
        "dashboard, http://HEAD:8265",
    )
    p.add_argument(
        "--submit",
        action="store_true",
        help="run the resume as a job on the cluster at --address and return at once",
    )
    _job_env_args(p)


def _experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment directory or URI")


def _finalize_args(p: argparse.ArgumentParser) -> None:
    _experiment_arg(p)
    p.add_argument("--top", type=int, default=None, metavar="K", help="default: eval.finalists")
    p.add_argument(
        "--attacks", nargs="+", default=None, help="attack names (default: the full suite)"
    )
    p.add_argument("--address", default=None, help="Ray to join: auto or HOST:PORT")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default="./experiments", help="where the demo experiment goes")


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", help="result directories or Parquet files")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output directory (default: the experiment's report/, beside its results/)",
    )
    p.add_argument("--response", default="robust_acc", help="metric to explain")
    p.add_argument(
        "--power",
        action="store_true",
        help="add the minimum detectable effect of the question's factors for 1-20 seeds",
    )


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job id, as `robprune submit` or `robprune jobs` prints it")
    _address(p)


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        help="an experiment (directory or URI: its state, read from its storage) or a job id "
        "(with --address: the job's state on the cluster and its experiment's)",
    )
    _address(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "folder",
        nargs="?",
        default="./experiments",
        help="where the experiments are (a directory or URI; default: ./experiments)",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def _logs_args(p: argparse.ArgumentParser) -> None:
    _job_args(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")


def _plan_options(p: argparse.ArgumentParser) -> None:
    """What `plan`, `search --plan` and `submit --plan` share."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="trials at once, for the wall time (default: this machine's CPUs over "
        "resources.cpu, capped by search.max_concurrent)",
    )
    p.add_argument(
        "--epoch-seconds",
        type=float,
        default=None,
        metavar="S",
        help="seconds of one fine-tuning epoch of a trial, instead of a measured calibration",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="use cached calibrations only; without them the cost is left out",
    )


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec (values or distributions)")
    p.add_argument("--name", default=None, help="experiment name (default: the spec's)")
    _overrides(p)
    _plan_options(p)


#: The subcommands, in the order `--help` lists them. A new one is one entry here.
COMMANDS: list[Command] = [
    Command(
        name="demo",
        handler="search.cli:demo_main",
        summary="offline default: local Ray, digits, a small grid, then a report",
        example="robprune demo --storage ./experiments",
        arguments=_demo_args,
    ),
    Command(
        name="run",
        handler="robprune.run_cli:main",
        summary="one trial end to end (prune, fine-tune, attack), no Ray",
        example="robprune run examples/digits.yaml --set prune.criterion=taylor",
        arguments=_run_args,
    ),
    Command(
        name="search",
        handler="search.cli:search_main",
        summary="Ray Tune + Optuna search over a spec, here or on a Ray cluster you are part of",
        example="robprune search examples/digits-search.yaml --storage ./experiments",
        arguments=_search_args,
    ),
    Command(
        name="plan",
        handler="search.plan.cli:plan_main",
        summary="what a search will run and cost (trials, dense models, hours), without Ray",
        example="robprune plan examples/digits-search.yaml --workers 8",
        arguments=_plan_args,
    ),
    Command(
        name="resume",
        handler="search.cli:resume_main",
        submit_handler="cluster.cli:resume_main",
        summary="continue an experiment after a crash, Ctrl-C or `stop` (here or --submit)",
        example="robprune resume s3://bucket/exps/NAME --submit --address http://HEAD:8265",
        arguments=_resume_args,
    ),
    Command(
        name="export",
        handler="search.cli:export_main",
        summary="(re)write EXPERIMENT/results/{trials,epochs,layers}.parquet",
        example="robprune export experiments/digits-search-20260101-120000",
        arguments=_experiment_arg,
    ),
    Command(
        name="finalize",
        handler="search.run.finalize:finalize_main",
        summary="the official AutoAttack and the full attack suite on the best trials",
        example="robprune finalize experiments/NAME --top 5",
        arguments=_finalize_args,
    ),
    Command(
        name="report",
        handler="analysis.cli:main",
        summary="ablation report (variance shares, verdict, figures) from Parquet results",
        example="robprune report experiments/NAME   (writes experiments/NAME/report/)",
        arguments=_report_args,
    ),
    Command(
        name="submit",
        handler="cluster.cli:submit_main",
        summary="submit a search to a Ray cluster as a job (Ray Jobs API) and return at once",
        example="robprune submit spec.yaml --address http://HEAD:8265 --storage s3://b/exps",
        arguments=_submit_args,
    ),
    Command(
        name="jobs",
        handler="cluster.cli:jobs_main",
        summary="robprune's jobs on a Ray cluster, one line each",
        example="robprune jobs --address http://HEAD:8265",
        arguments=_address,
    ),
    Command(
        name="status",
        handler="cluster.cli:status_main",
        summary="an experiment's state (here, on storage, or a cluster job's): trials, best "
        "validation value, last error, where its results and report are",
        example="robprune status experiments/digits-search-20260101-120000   "
        "(or JOB --address http://HEAD:8265)",
        arguments=_status_args,
    ),
    Command(
        name="list",
        handler="search.status_cli:list_main",
        summary="the experiments under a folder (or URI), one line each",
        example="robprune list ./experiments",
        arguments=_list_args,
    ),
    Command(
        name="logs",
        handler="cluster.cli:logs_main",
        summary="a job's output (the search's progress lines)",
        example="robprune logs robprune-digits-1a2b3c --follow --address http://HEAD:8265",
        arguments=_logs_args,
    ),
    Command(
        name="stop",
        handler="cluster.cli:stop_main",
        summary="stop a job; its experiment stays resumable with `resume --submit`",
        example="robprune stop robprune-digits-1a2b3c --address http://HEAD:8265",
        arguments=_job_args,
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
