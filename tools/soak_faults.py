"""Storage faults for the resume soak: the experiment's disk fills up or stops taking writes.

The experiments live on a small tmpfs of their own (mounting needs root). A fault is applied
at a random moment of a driver's run and lifted once the driver has ended; the driver must
end by itself with exit 75 (the storage fault line) or, when the fault came too late to
matter, 0; a search refused before it wrote anything may exit 2. Anything else, or a driver
still running `timeout` seconds after the fault, is a problem. Kinds:

- `full`: a ballast file grows until the disk has no space left (ENOSPC);
- `read-only`: every folder and file of the experiment made immutable (`chattr -R +i`), so
  each write fails with EPERM even for root (a tmpfs cannot be remounted read-only while
  files are open for writing, and permission bits do not stop root).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from soak_record import TrialAtKill, disk_state, evidence, latest_phase
from soak_resume import Driver

__all__ = ["FAULT_KINDS", "SmallDisk", "Fault", "fault_at"]

FAULT_KINDS = ("full", "read-only")
#: Exit codes a driver may end with after a storage fault (see the module docstring).
ACCEPTED_EXITS = (75, 0, 2)


@dataclass
class SmallDisk:
    """A tmpfs mounted at `mount` for the soak's experiments."""

    mount: Path
    size: str = "256m"
    _frozen: list[Path] = field(default_factory=list)

    def __enter__(self) -> SmallDisk:
        self.mount.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size}"
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.mount)], check=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.lift()
        subprocess.run(["umount", "-l", str(self.mount)], check=False)

    @property
    def ballast(self) -> Path:
        return self.mount / "ballast"

    def apply(self, kind: str, exp: Path) -> None:
        if kind == "full":
            with open(self.ballast, "ab") as handle:
                try:
                    while True:
                        handle.write(b"\0" * (1 << 20))
                        handle.flush()
                except OSError:
                    pass
        elif exp.exists():
            subprocess.run(["chattr", "-R", "+i", str(exp)], check=False, capture_output=True)
            self._frozen.append(exp)

    def lift(self) -> None:
        """The fault is gone: space freed, writes allowed again."""
        for path in self._frozen:
            subprocess.run(["chattr", "-R", "-i", str(path)], check=False, capture_output=True)
        self._frozen.clear()
        self.ballast.unlink(missing_ok=True)


@dataclass
class Fault:
    """One storage fault: its kind, the phase the driver had reached, how the driver ended."""

    kind: str
    reached: str
    after_s: float
    exit_code: int
    line: str  # the driver's last `robprune: error:` line, if any
    state: dict[str, TrialAtKill] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.exit_code in ACCEPTED_EXITS


def fault_at(
    args: list[str],
    exp: Path,
    log: Path,
    disk: SmallDisk,
    kind: str,
    *,
    delay: float,
    timeout: float,
) -> tuple[Driver, Fault | None]:
    """Start a driver, apply a fault of `kind` after `delay` s, lift it once the driver ended
    (or was killed after `timeout`). None when the driver ended before the fault."""
    before = evidence(exp)
    driver = Driver.start(args, log)
    driver.wait_for(lambda: False, timeout=delay)
    if not driver.running():
        return driver, None
    reached = latest_phase(exp, driver.text(), before)
    after = time.monotonic() - driver.started
    disk.apply(kind, exp)
    code = driver.finish(timeout=timeout)
    disk.lift()
    lines = [x for x in driver.text().splitlines() if x.startswith("robprune: error:")]
    fault = Fault(kind, reached, after, code, lines[-1] if lines else "", disk_state(exp))
    return driver, fault
