"""The `robprune` command line: every subcommand and the module that handles it.

The one package above all others: it imports each command's entry module directly, and
those defer their heavy imports (torch, Ray, Optuna, statsmodels, matplotlib) to the moment
they run, so `robprune --help`, `robprune plan` and `robprune report` load none they do not
need. Parsing and exit codes are `robprune.cli`'s.
"""

from __future__ import annotations

import argparse

from analysis import cli as analysis_cli
from cluster import cli as cluster_cli
from robprune import cli_args as options
from robprune import run_cli
from robprune.cli import Command, dispatch, main_parser
from search import cli as search_cli
from search import status_cli
from search.finalists import finalize
from search.plan import cli as plan_cli

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS: list[Command] = [
    Command(
        name="demo",
        handler=search_cli.demo_main,
        summary="offline default: local Ray, digits, a small grid, then a report",
        example="robprune demo --storage ./experiments",
        arguments=options.demo_args,
    ),
    Command(
        name="run",
        handler=run_cli.main,
        summary="one trial end to end (prune, fine-tune, attack), no Ray",
        example="robprune run examples/digits.yaml --set prune.criterion=taylor",
        arguments=options.run_args,
    ),
    Command(
        name="search",
        handler=search_cli.search_main,
        summary="Ray Tune + Optuna search over a spec, here or on a Ray cluster you are part of",
        example="robprune search examples/digits-search.yaml --storage ./experiments",
        arguments=options.search_args,
    ),
    Command(
        name="plan",
        handler=plan_cli.plan_main,
        summary="what a search will run and cost (trials, dense models, hours), without Ray",
        example="robprune plan examples/digits-search.yaml --workers 8",
        arguments=options.plan_args,
    ),
    Command(
        name="resume",
        handler=search_cli.resume_main,
        submit_handler=cluster_cli.resume_main,
        summary="continue an experiment after a crash, Ctrl-C or `stop` (here or --submit)",
        example="robprune resume s3://bucket/exps/NAME --submit --address http://HEAD:8265",
        arguments=options.resume_args,
    ),
    Command(
        name="export",
        handler=search_cli.export_main,
        summary="(re)write EXPERIMENT/results/{trials,epochs,layers}.parquet",
        example="robprune export experiments/digits-search-20260101-120000",
        arguments=options.experiment_arg,
    ),
    Command(
        name="finalize",
        handler=finalize.finalize_main,
        summary="the official AutoAttack and the full attack suite on the best trials",
        example="robprune finalize experiments/NAME --top 5",
        arguments=options.finalize_args,
    ),
    Command(
        name="report",
        handler=analysis_cli.main,
        summary="ablation report (variance shares, verdict, figures) from Parquet results",
        example="robprune report experiments/NAME",
        arguments=options.report_args,
    ),
    Command(
        name="submit",
        handler=cluster_cli.submit_main,
        summary="submit a search to a Ray cluster as a job (Ray Jobs API) and return at once",
        example="robprune submit spec.yaml --address http://HEAD:8265 --storage s3://b/exps",
        arguments=options.submit_args,
    ),
    Command(
        name="jobs",
        handler=cluster_cli.jobs_main,
        summary="robprune's jobs on a Ray cluster, one line each",
        example="robprune jobs --address http://HEAD:8265",
        arguments=options.address,
    ),
    Command(
        name="status",
        handler=cluster_cli.status_main,
        summary="an experiment's state (here, on storage, or a cluster job's): trials, best "
        "validation value, last error, where its results and report are",
        example="robprune status experiments/digits-search-20260101-120000",
        arguments=options.status_args,
    ),
    Command(
        name="list",
        handler=status_cli.list_main,
        summary="the experiments under a folder (or URI), one line each",
        example="robprune list ./experiments",
        arguments=options.list_args,
    ),
    Command(
        name="logs",
        handler=cluster_cli.logs_main,
        summary="a job's output (the search's progress lines)",
        example="robprune logs robprune-digits-1a2b3c --follow --address http://HEAD:8265",
        arguments=options.logs_args,
    ),
    Command(
        name="stop",
        handler=cluster_cli.stop_main,
        summary="stop a job; its experiment stays resumable with `resume --submit`",
        example="robprune stop robprune-digits-1a2b3c --address http://HEAD:8265",
        arguments=options.job_args,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    return main_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    return dispatch(COMMANDS, argv)
