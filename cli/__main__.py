"""`python -m cli ARGS`: the `robprune` command without its console script."""

from cli.commands import main

raise SystemExit(main())
