"""Classes that Tune snapshots made by earlier robprune versions name by an older module path.

Tune pickles robprune's searcher and callbacks by module and class name (`tuner.pkl`, the
searcher's state); a class moved to another module must stay importable where it was, or
those experiments no longer restore (`tests/system/test_stored_experiment.py` resumes two made
before the moves). `alias_moved_classes` puts each moved class back under its old name before a
restore; the old modules themselves need not import the new ones (nor Ray).
"""

from __future__ import annotations

import importlib

from search.run.status_callback import StatusFileCallback

__all__ = ["MOVED", "alias_moved_classes"]

#: (old module, class name) -> the class, for every pickled class that moved.
MOVED: dict[tuple[str, str], type] = {
    ("search.state.status_file", "StatusFileCallback"): StatusFileCallback,
}


def alias_moved_classes() -> None:
    """Make every moved class importable under its old path too (for unpickling)."""
    for (module, name), cls in MOVED.items():
        target = importlib.import_module(module)
        if not hasattr(target, name):
            setattr(target, name, cls)
