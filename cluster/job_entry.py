"""What a submitted job runs on the cluster: `python -m cluster.job_entry search|resume ...`.

`search` takes its spec from $ROBPRUNE_SPEC_YAML (the submitting machine validated it and put
it into the job's runtime environment), writes it to a private temporary file and runs
`robprune search` on it; `resume` runs `robprune resume` as given. Exit codes are robprune's.
The two commands are parsed and run by `robprune.cli`'s machinery, as on the command line
(the front door, the `cli` package, sits above this one).
"""

from __future__ import annotations

import os
import sys
import tempfile

from cluster.submit import SPEC_ENV
from robprune import cli_args as options
from robprune.cli import Command, dispatch
from search import cli as search_cli

__all__ = ["main"]

#: What a job runs: the handlers of `robprune search` and of a plain `robprune resume`.
JOB_COMMANDS = (
    Command(
        name="search",
        handler=search_cli.search_main,
        summary="a search, in a job",
        example="robprune search spec.yaml",
        arguments=options.search_args,
    ),
    Command(
        name="resume",
        handler=search_cli.resume_main,
        summary="a resume, in a job",
        example="robprune resume EXPERIMENT",
        arguments=options.resume_args,
    ),
)


def robprune_main(argv: list[str]) -> int:
    return dispatch(JOB_COMMANDS, argv)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("search", "resume"):
        sys.stderr.write("usage: python -m cluster.job_entry search|resume ARGS...\n")
        return 2
    command, rest = argv[0], argv[1:]
    if command == "resume":
        return robprune_main(["resume", *rest])
    spec_yaml = os.environ.get(SPEC_ENV)
    if not spec_yaml:
        sys.stderr.write(f"robprune job: {SPEC_ENV} is not set (submit with `robprune submit`)\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="robprune-job-") as tmp:
        path = os.path.join(tmp, "spec.yaml")
        with open(path, "w") as handle:
            handle.write(spec_yaml)
        return robprune_main(["search", path, *rest])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
