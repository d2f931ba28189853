"""The options of each `robprune` subcommand (the `cli` package's table names one per command).

Shared groups (`--set`, `--plan`, a job's environment) are one function each, so every
command that takes them takes them alike.
"""

from __future__ import annotations

import argparse

__all__ = [
    "overrides",
    "run_args",
    "search_args",
    "plan_flag",
    "resume_flag",
    "address",
    "job_env_args",
    "submit_args",
    "resume_args",
    "experiment_arg",
    "finalize_args",
    "demo_args",
    "report_args",
    "job_args",
    "status_args",
    "list_args",
    "logs_args",
    "plan_options",
    "plan_args",
]


def overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any leaf of the spec, e.g. --set finetune.epochs=3 (repeatable)",
    )


def run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML trial spec (fixed values only)")
    overrides(p)
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


def search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec (values or distributions)")
    p.add_argument(
        "--address", default=None, help="Ray to join: auto or HOST:PORT (default: a local Ray)"
    )
    p.add_argument("--storage", default=None, help="local path or URI (s3://...)")
    p.add_argument("--name", default=None, help="experiment name (default: spec name + time)")
    resume_flag(p)
    overrides(p)
    plan_flag(p)


def plan_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plan",
        action="store_true",
        help="print what the search would run and cost (as `robprune plan`) and stop",
    )
    plan_options(p)


def resume_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        action="store_true",
        help="if the experiment (--storage/--name) exists, continue it instead of refusing: "
        "running the same command again after a lost driver or head finishes the search",
    )


def address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=None,
        help="the head's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
        "then $RAY_ADDRESS)",
    )


def job_env_args(p: argparse.ArgumentParser) -> None:
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


def submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec, validated here before submission")
    address(p)
    p.add_argument(
        "--storage", default=None, help="where the experiment lives: s3://bucket/prefix or a path"
    )
    p.add_argument("--name", default=None, help="experiment name (default: spec name + time)")
    resume_flag(p)
    overrides(p)
    job_env_args(p)
    plan_flag(p)


def resume_args(p: argparse.ArgumentParser) -> None:
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
    job_env_args(p)


def experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment directory or URI")


def finalize_args(p: argparse.ArgumentParser) -> None:
    experiment_arg(p)
    p.add_argument("--top", type=int, default=None, metavar="K", help="default: eval.finalists")
    p.add_argument(
        "--attacks", nargs="+", default=None, help="attack names (default: the full suite)"
    )
    p.add_argument("--address", default=None, help="Ray to join: auto or HOST:PORT")


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default="./experiments", help="where the demo experiment goes")


def report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", help="result directories or Parquet files")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output directory (default: the experiment's report/, beside its results/)",
    )
    p.add_argument("--response", default=None, help="metric (default: strong_acc or robust_acc)")
    p.add_argument(
        "--power",
        action="store_true",
        help="add the minimum detectable effect of the question's factors for 1-20 seeds",
    )


def job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job id, as `robprune submit` or `robprune jobs` prints it")
    address(p)


def status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        help="an experiment (directory or URI: its state, read from its storage) or a job id "
        "(with --address: the job's state on the cluster and its experiment's)",
    )
    address(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "folder",
        nargs="?",
        default="./experiments",
        help="where the experiments are (a directory or URI; default: ./experiments)",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def logs_args(p: argparse.ArgumentParser) -> None:
    job_args(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")


def plan_options(p: argparse.ArgumentParser) -> None:
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


def plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="YAML experiment spec (values or distributions)")
    p.add_argument("--name", default=None, help="experiment name (default: the spec's)")
    overrides(p)
    plan_options(p)


#: The subcommands, in the order `--help` lists them. A new one is one entry here.
