"""The `robprune` command: a thin dispatcher.

Each subcommand imports its package only when called, so `robprune report` starts fast and
works without torch or Ray on the import path (DESIGN §1). Exit codes: 0 success, 1 failed work,
2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robprune.errors import BadInput

__all__ = ["main", "build_parser"]

# subcommand -> "module:function"; each function takes the parsed argparse.Namespace.
_HANDLERS = {
    "run": "robprune.run_cli:main",
    "search": "search.cli:search_main",
    "resume": "search.cli:resume_main",
    "export": "search.cli:export_main",
    "demo": "search.cli:demo_main",
    "report": "analysis.cli:main",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own bad-usage path: keep it one line, exit 2
        sys.stderr.write(f"robprune: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="one trial, no Ray")
    p.add_argument("spec", help="YAML trial spec (fixed values only)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any leaf, e.g. --set finetune.epochs=3",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="directory for result.json and config.yaml (default: runs/NAME-TIME)",
    )

    p = sub.add_parser("search", help="Ray Tune + Optuna search over a spec")
    p.add_argument("spec")
    p.add_argument("--address", default=None, help="Ray address: auto or HOST:PORT")
    p.add_argument("--storage", default=None, help="local path or URI (s3://...)")
    p.add_argument("--name", default=None, help="experiment name (default: spec name + time)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("resume", help="continue an experiment after a crash or Ctrl-C")
    p.add_argument("experiment", help="experiment directory or URI")
    p.add_argument("--extend", type=int, default=0, metavar="N", help="add N more trials")
    p.add_argument("--address", default=None)

    p = sub.add_parser("export", help="(re)write EXPERIMENT/results/*.parquet")
    p.add_argument("experiment")

    p = sub.add_parser("demo", help="offline default: local Ray, digits, small grid, report")
    p.add_argument("--storage", default="./experiments")

    p = sub.add_parser("report", help="ablation report from Parquet results")
    p.add_argument("results", nargs="+", help="result directories or Parquet files")
    p.add_argument("-o", "--output", default="report", help="output directory")
    p.add_argument("--response", default="robust_acc", help="metric to explain")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = _HANDLERS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        code = handler(args)
    except BadInput as exc:
        sys.stderr.write(f"robprune {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("robprune: interrupted\n")
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
