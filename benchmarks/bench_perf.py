"""robprune's loops against the plain PyTorch loop, in one run, one table.

Rows: seconds per epoch and images/s of the plain loop (benchmarks/plain.py) and of robprune's
`Trainer` for each method (ce, pgd_at, trades, mart, fgsm_rs); evaluation under PGD-20 and
APGD-CE (plain: the textbook PGD loop and the official AutoAttack APGD from `pyautoattack`);
the fraction of peak where the device's peak is known (CUDA bf16 dense); one row per
optimisation switched on alone (robprune with every switch off, then amp, channels_last,
compile); packing: 1, 2, 4 trials as processes sharing the device (aggregate images/s); and
PGD-20 robust accuracy in fp32 against bf16 autocast (bf16 must not be weaker by > 1 point).
Both sides of each ratio run in the same process, alternating, median of `--repeats`; on CPU
the clock is the process's CPU time (robust to a shared machine), on CUDA wall time.

    python benchmarks/bench_perf.py --device cpu            # small model, a few minutes
    python benchmarks/bench_perf.py --device cuda --workload resnet18
    python benchmarks/bench_perf.py --device cpu --json     # one JSON line with the ratios
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_workloads import (  # noqa: E402
    METHODS,
    WORKLOADS,
    make_data,
    make_model,
    make_trainer,
    passes_per_example,
    peak_flops,
    progress,
    sync,
    timed,
)
from plain import plain_epoch, plain_loader, plain_pgd, plain_robust_accuracy  # noqa: E402

from robprune.attacks import build_attack  # noqa: E402
from robprune.data import to_float  # noqa: E402
from robprune.evaluation.accuracy import accuracy_under  # noqa: E402
from robprune.pruning import count_macs_params  # noqa: E402
from robprune.runtime import Runtime  # noqa: E402


def bench_finetune(w, data, device, runtime, methods, repeats, workers, flops_fwd):
    x, y = to_float(data.train.x), data.train.y
    loader = plain_loader(x, y, batch_size=w.batch, workers=workers, shuffle=True)
    images = (len(data.train) // w.batch) * w.batch
    rows = []
    for method in methods:
        trainer = make_trainer(w, data, method, device, runtime)
        plain_model = make_model(w, data, device)
        opt = torch.optim.SGD(plain_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def plain(m=method, model=plain_model, o=opt):
            return plain_epoch(m, model, loader, o, device, w.eps, w.alpha, w.steps)

        trainer.run_epoch(), plain()  # warm-up (allocator, cuDNN autotuning, compile)
        ours, base = [], []
        for _ in range(repeats):
            ours.append(timed(trainer.run_epoch, device))
            base.append(timed(plain, device))
        t_ours, t_base = statistics.median(ours), statistics.median(base)
        progress(f"{method}: robprune {ours} plain {base}")
        rows.append(
            {
                "method": method,
                "plain_s": t_base,
                "robprune_s": t_ours,
                "plain_ips": images / t_base,
                "robprune_ips": images / t_ours,
                "ratio": t_base / t_ours,
                "flops": images * flops_fwd * passes_per_example(method, w.steps),
            }
        )
    return rows


def bench_eval(w, data, device, runtime, repeats, workers, flops_fwd):
    model = make_model(w, data, device).eval()
    x, y = to_float(data.test.x), data.test.y
    loader = plain_loader(x, y, batch_size=w.eval_batch, workers=workers, shuffle=False)
    rows = []
    pgd = build_attack("pgd20", epsilon=w.eps, step_size=w.alpha)
    apgd = build_attack(f"apgd_ce{w.apgd_steps}", epsilon=w.eps)
    try:
        from pyautoattack.autopgd_base import APGDAttack
    except ImportError:  # the official code is optional here
        APGDAttack = None

    def plain_apgd(model, xb, yb):
        attack = APGDAttack(
            model, n_iter=w.apgd_steps, norm="Linf", eps=w.eps, loss="ce", device=device
        )
        return attack.perturb(xb, yb)

    cases = [("pgd20", pgd, lambda m, a, b: plain_pgd(m, a, b, w.eps, w.alpha, 20), 20)]
    if APGDAttack is not None:
        cases.append((apgd.name, apgd, plain_apgd, w.apgd_steps))
    for name, ours_attack, plain_attack, steps in cases:

        def ours(a=ours_attack):
            return accuracy_under(
                model, data.test, a, batch_size=w.eval_batch, device=device, runtime=runtime
            )

        def base(a=plain_attack):
            return plain_robust_accuracy(model, loader, device, a)

        ours(), base()
        t_ours = statistics.median(timed(ours, device) for _ in range(repeats))
        t_base = statistics.median(timed(base, device) for _ in range(repeats))
        progress(f"eval {name}: robprune {t_ours:.3f} plain {t_base:.3f}")
        n = len(data.test)
        rows.append(
            {
                "method": f"eval {name}",
                "plain_s": t_base,
                "robprune_s": t_ours,
                "plain_ips": n / t_base,
                "robprune_ips": n / t_ours,
                "ratio": t_base / t_ours,
                "flops": n * flops_fwd * (2 * steps + 2),
            }
        )
    return rows


def bench_ablation(w, data, device, repeats, method="pgd_at"):
    """robprune with every switch off, then each optimisation switched on alone."""
    off = Runtime(device=device, data_placement="host")
    variants = {
        "all off (fp32, NCHW, eager, data on host)": off,
        "+ data on device (uint8)": replace(off, data_placement="device"),
        "+ bf16 autocast": replace(off, amp=True),
        "+ channels_last": replace(off, channels_last=True),
        "+ torch.compile": replace(off, compile=True),
        "auto (the default)": Runtime.default(device),
    }
    rows = []
    base = None
    for label, runtime in variants.items():
        if device.type == "cpu" and label.startswith("+ data on device"):
            continue  # the same thing as "data on host" on a CPU device
        trainer = make_trainer(w, data, method, device, runtime)
        first = timed(trainer.run_epoch, device)  # includes compilation, if any
        t = statistics.median(timed(trainer.run_epoch, device) for _ in range(repeats))
        base = base or t
        progress(f"{label}: {t:.3f} s (first epoch {first:.1f} s)")
        rows.append({"variant": label, "s": t, "speedup": base / t, "first_s": first})
    return rows


def bf16_check(w, data, device):
    """PGD-20 robust accuracy of a briefly PGD-trained model, fp32 vs bf16 autocast."""
    trainer = make_trainer(w, data, "pgd_at", device, Runtime(device=device))
    for _ in range(3):
        trainer.run_epoch()
    pgd = build_attack("pgd20", epsilon=w.eps, step_size=w.alpha)
    out = {}
    for label, runtime in (
        ("fp32", Runtime(device=device)),
        ("bf16", replace(Runtime(device=device), amp=True)),
    ):
        out[label] = accuracy_under(
            trainer.model, data.test, pgd, batch_size=w.eval_batch, device=device, runtime=runtime
        ).accuracy
    out["gap_points"] = 100 * (out["bf16"] - out["fp32"])
    return out


def _pack_worker(workload, device, threads, epochs, barrier, queue):
    torch.set_num_threads(threads)
    w = WORKLOADS[workload]
    dev = torch.device(device)
    data = make_data(w)
    trainer = make_trainer(w, data, "pgd_at", dev, Runtime.default(dev))
    trainer.run_epoch()
    sync(dev)
    barrier.wait()
    t = time.perf_counter()
    for _ in range(epochs):
        trainer.run_epoch()
    sync(dev)
    queue.put((trainer.steps_per_epoch * w.batch * epochs, time.perf_counter() - t))


def bench_packing(workload, device, counts, epochs):
    """Aggregate images/s of N concurrent PGD-AT trials (processes) on one device."""
    ctx = mp.get_context("spawn")
    total_threads = torch.get_num_threads()
    rows = []
    for n in counts:
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        threads = max(1, total_threads // n) if device.type == "cpu" else 1
        procs = [
            ctx.Process(
                target=_pack_worker, args=(workload, str(device), threads, epochs, barrier, queue)
            )
            for _ in range(n)
        ]
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        images = sum(r[0] for r in results)
        wall = max(r[1] for r in results)
        rows.append({"trials": n, "ips": images / wall})
    for row in rows:
        row["speedup"] = row["ips"] / rows[0]["ips"]
    return rows


def _print_table(device, w, rows, peak, ablation, packing, bf16):
    print(
        "\n| method | plain s/epoch | plain img/s | robprune s/epoch | robprune img/s | "
        "ratio | robprune % of peak |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        frac = f"{100 * r['flops'] / r['robprune_s'] / peak:.1f}%" if peak else "n/a"
        print(
            f"| {r['method']} | {r['plain_s']:.3f} | {r['plain_ips']:.0f} | "
            f"{r['robprune_s']:.3f} | {r['robprune_ips']:.0f} | {r['ratio']:.2f} | {frac} |"
        )
    if ablation:
        print(
            "\n| optimisation (pgd_at, one at a time) | s/epoch | speed-up vs all off "
            "| first epoch s (compilation) |"
        )
        print("|---|---:|---:|---:|")
        for r in ablation:
            print(f"| {r['variant']} | {r['s']:.3f} | {r['speedup']:.2f} | {r['first_s']:.1f} |")
    if packing:
        print("\n| trials sharing the device | aggregate img/s | vs 1 trial |")
        print("|---:|---:|---:|")
        for r in packing:
            print(f"| {r['trials']} | {r['ips']:.0f} | {r['speedup']:.2f} |")
    if bf16:
        print(
            f"\nPGD-20 robust accuracy: fp32 {bf16['fp32']:.4f}, bf16 {bf16['bf16']:.4f} "
            f"(bf16 - fp32 = {bf16['gap_points']:+.2f} points; must be <= +1)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="plain loop DataLoader workers (default: 4 on CUDA, 0 on CPU)",
    )
    parser.add_argument("--pack", default="1,2,4", help="trials per device, '' to skip")
    parser.add_argument("--pack-epochs", type=int, default=2)
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    device = torch.device(args.device)
    workload = args.workload or ("resnet18" if device.type == "cuda" else "small")
    w = WORKLOADS[workload]
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    data = make_data(w)
    macs, params = count_macs_params(
        make_model(w, data, device).eval(), to_float(data.train.x[:1]).to(device)
    )
    flops_fwd = 2 * macs
    runtime = Runtime.default(device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    )
    print(
        f"torch {torch.__version__}; {where}; workload {workload}: {w.arch}, "
        f"{len(data.train)} train / {len(data.test)} test images 3x32x32, batch {w.batch}, "
        f"PGD-{w.steps}; {params / 1e6:.2f} M params, {flops_fwd / 1e9:.3f} GFLOP/forward; "
        f"robprune runtime {runtime.describe()}; plain loop: fp32, DataLoader workers "
        f"{workers}; median of {args.repeats}; "
        f"{'process CPU seconds' if device.type == 'cpu' else 'wall seconds'} "
        "(packing: wall seconds)"
    )
    rows = bench_finetune(w, data, device, runtime, args.methods, args.repeats, workers, flops_fwd)
    if not args.no_eval:
        rows += bench_eval(w, data, device, runtime, args.repeats, workers, flops_fwd)
    ablation = None if args.no_ablation else bench_ablation(w, data, device, args.repeats)
    counts = [int(c) for c in args.pack.split(",") if c]
    packing = bench_packing(workload, device, counts, args.pack_epochs) if counts else None
    bf16 = bf16_check(w, data, device)
    _print_table(device, w, rows, peak_flops(device), ablation, packing, bf16)
    if args.json:
        print(
            json.dumps(
                {
                    "device": where,
                    "workload": workload,
                    "ratios": {r["method"]: round(r["ratio"], 3) for r in rows},
                    "fraction_of_peak": {
                        r["method"]: r["flops"] / r["robprune_s"] / peak_flops(device)
                        for r in rows
                    }
                    if peak_flops(device)
                    else None,
                    "ablation": {r["variant"]: round(r["speedup"], 3) for r in ablation or []},
                    "packing": {r["trials"]: round(r["speedup"], 3) for r in packing or []},
                    "bf16_minus_fp32_pgd20_points": round(bf16["gap_points"], 2),
                }
            )
        )


if __name__ == "__main__":
    main()
