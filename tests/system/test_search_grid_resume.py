"""A killed grid search resumes to every cell exactly once, with or without Tune's snapshot.

Two faults a grid run met: Tune's restored grid generator counted trials that had ended after
its snapshot as still running, so a resume with every slot held that way waited without end;
and a grid run whose snapshot was gone started over with new trial ids, rerunning finished
cells. Here a 4-cell grid (2 at a time) is SIGKILLed the moment a trial has ended (Tune's
snapshot, saved every few seconds, still counts it running), resumed with that snapshot
deleted outright and killed again at its next trial end, then resumed from the rebuilt run's
own snapshot: the last resume must finish in bounded time with each cell once, none that had
finished run again and none that had a checkpoint restarted from zero.
"""

from __future__ import annotations

import sys

import yaml

from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_record import check  # noqa: E402
from soak_resume import Driver, kill_at, soak_spec  # noqa: E402

_SNAPSHOT = ("experiment_state-*.json", "basic-variant-state-*.json", "search_gen_state-*.json")


def test_killed_grid_resumes_every_cell_once_even_without_tunes_snapshot(tmp_path):
    spec = soak_spec(str(tmp_path / "exps"), "grid", epochs=8)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    exp = tmp_path / "exps" / "g"
    log = tmp_path / "drivers.log"
    kills = []
    for args in (["search", str(spec_path), "--name", "g"], ["resume", str(exp)]):
        if kills:  # the second run starts without Tune's snapshot: rebuilt from the records
            deleted = [p for pattern in _SNAPSHOT for p in exp.glob(f"tune/run-000/{pattern}")]
            assert deleted, "Tune saved no snapshot before the kill"
            for path in deleted:
                path.unlink()
        driver, kill = kill_at(args, exp, log, "trial end", timeout=300)
        assert kill is not None, f"the driver ended first\n{log.read_text()[-3000:]}"
        kills.append(kill)
    assert "rebuilt from robprune's records" in log.read_text()

    final = Driver.start(["resume", str(exp)], log)
    assert final.finish(timeout=300) == 0, log.read_text()[-4000:]
    sessions = [k.session for k in kills if k.session]
    verdict = check(exp, spec, [k.state for k in kills], sessions)
    assert verdict.problems == [] and verdict.lost == 0 and verdict.duplicated == 0, (
        verdict,
        log.read_text()[-4000:],
    )
