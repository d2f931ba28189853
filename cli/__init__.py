"""`robprune`, the command line's front door: `cli.main` is the console script.

Sits above robprune/, search/, analysis/ and cluster/ and may import any of them; none of
them imports it. `python -m cli` runs it too.
"""

from cli.commands import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
