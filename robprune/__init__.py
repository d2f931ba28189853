"""robprune: robust structured pruning, one trial end to end (plain PyTorch, no Ray).

Kept import-light on purpose: `robprune.io.results_schema` and the CLI must load without torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
