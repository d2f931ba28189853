"""The table and the plot of `bench_scale.py`'s runs (each a `--json` row), and the recorded
runs read back (`--replot`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "latest_runs", "plot", "print_table", "read_runs", "run_key"]

#: The columns of the table, in order (each a key of a measurement).
COLUMNS = (
    "overhead_per_trial_s",
    "driver_cpu_per_trial_s",
    "suggest_p50_ms",
    "suggest_p99_ms",
    "journal_bytes",
    "journal_open_s",
    "bytes_pushed_per_trial",
    "resume_s",
    "export_s",
    "report_s",
    "driver_peak_mb",
    "resume_interrupted_reconcile_s",
    "resume_first_trial_s",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _mode(r: dict[str, Any]) -> str:
    """A run's mode, with its sampler where not the default TPE (rows before `--sampler`: TPE)."""
    sampler = r.get("sampler")
    return r["mode"] if sampler in (None, "tpe") else f"{r['mode']} ({sampler})"


def _storage(r: dict[str, Any]) -> str:
    """A run's storage, with moto's listing where indexed (rows before `--s3-listing`: moto)."""
    listing = r.get("s3_listing")
    return r["storage"] if listing in (None, "moto") else f"{r['storage']} ({listing})"


def run_key(r: dict[str, Any]) -> tuple:
    """What makes two recorded runs the same measurement (the later one replaces the earlier)."""
    return (_mode(r), _storage(r), r["nodes"], r.get("concurrency", 16), r["size"])


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["mode", "storage", "nodes", "concurrency", "trials", *COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = list(run_key(r))
        cells += [r.get(c) for c in COLUMNS]
        print("| " + " | ".join(_fmt(c) for c in cells) + " |")


def plot(rows: list[dict[str, Any]], directory: Path) -> Path:
    """Each measure against the number of trials, log-log, one line per mode and storage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(r: dict[str, Any]) -> str:  # a run's key without its size
        mode, storage, nodes, concurrency, _ = run_key(r)
        return f"{mode}/{storage}/{nodes}n/c{concurrency}"

    # one colour and marker per series, the same in every panel; one legend for the figure
    names = sorted({series(r) for r in rows})
    colours = plt.get_cmap("tab20").colors
    style = {
        n: (colours[i % len(colours)], "os^Dv"[i // len(colours) % 5]) for i, n in enumerate(names)
    }
    fig, axes = plt.subplots(3, 5, figsize=(20, 10))
    for ax, column in zip(axes.flat, COLUMNS, strict=False):
        groups: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.get(column) is not None and r[column] > 0:
                groups.setdefault(series(r), []).append((r["size"], r[column]))
        for key, points in sorted(groups.items()):
            xs, ys = zip(*sorted(points), strict=True)
            colour, marker = style[key]
            ax.plot(xs, ys, marker=marker, color=colour, label=key)
        ax.set(xscale="log", yscale="log", title=column, xlabel="trials")
        sizes = sorted({r["size"] for r in rows})
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
    spare = list(axes.flat)[len(COLUMNS) :]
    for ax in spare:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=style[n][0], marker=style[n][1], label=n) for n in names]
    (spare[0] if spare else fig).legend(handles=handles, loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench_scale.png"
    fig.savefig(path, dpi=80)
    return path


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a file of recorded `--json` lines, in order."""
    lines = path.read_text().splitlines()
    return [r for line in lines if line.strip() for r in json.loads(line)["runs"]]


def latest_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """The recorded runs of `paths`, a measurement taken again replaced by its latest; an
    `--interrupt-only` run merged into its full run (it holds the killed-driver measures)."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in (r for path in paths for r in read_runs(path)):
        if r.get("interrupt_only") and run_key(r) in latest:
            latest[run_key(r)] = {**latest[run_key(r)], **r}
        else:
            latest[run_key(r)] = r
    return list(latest.values())
