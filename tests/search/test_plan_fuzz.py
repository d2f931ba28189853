"""Short fuzz of the spec validator through `robprune plan` (tools/fuzz_spec.py runs 1,000+).

Every mutated spec must be valid (exit 0, a plan printed) or one line on stderr with exit 2;
never a traceback, a hang or other output. The fuzzer runs in its own process: it caps its
address space (a spec that asks for billions of trials must be refused, not fill the memory),
which the test process, holding torch and Ray's mappings, could not live under.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support.paths import ROOT

#: Specs per CI run: a couple of hundred in well under a minute.
COUNT = 200


def test_fuzzed_specs_are_valid_or_one_line_errors():
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fuzz_spec.py"), "--count", str(COUNT)]
        + ["--seed", "20261203", "--memory-gib", "6"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = re.search(r"(\d+) specs: (\d+) valid, (\d+) one-line errors, 0 tracebacks", run.stdout)
    assert found, run.stdout[-2000:]
    count, valid, errors = map(int, found.groups())
    assert count == COUNT == valid + errors
    assert valid >= COUNT // 20 and errors >= COUNT // 2
