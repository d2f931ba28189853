"""Short fuzz of the spec validator through `robprune plan` (tools/fuzz_spec.py runs 1,000+).

Every mutated spec must be valid (exit 0, a plan printed) or one line on stderr with exit 2;
never a traceback, a hang or other output.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from fuzz_spec import fuzz  # noqa: E402

#: Specs per CI run: a couple of hundred in well under a minute.
COUNT = 200


def test_fuzzed_specs_are_valid_or_one_line_errors():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # a spec that asks for billions of trials must be refused, not fill the memory
    cap = 6 * 2**30 if hard == resource.RLIM_INFINITY else min(6 * 2**30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        summary = fuzz(COUNT, seed=20261203)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert summary.count == COUNT
    assert summary.failures == [], summary.failures[:3]
    assert summary.valid >= COUNT // 20 and summary.errors >= COUNT // 2
