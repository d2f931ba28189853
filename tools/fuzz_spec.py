"""Fuzz the spec validator: mutate valid specs at random and run `robprune plan` on each.

    python tools/fuzz_spec.py --count 1000 --seed 0 [--memory-gib 6] [--verbose]

Each spec is one of examples/*.yaml with one to three random mutations: wrong types, values out
of range, unknown keys, conditional keys in the wrong branch, empty lists, broken distributions,
huge numbers, unicode, and YAML oddities (tabs, duplicate keys, anchors and merges, tags, deep
nesting, several documents, a scalar or a list at top level). `robprune plan --epoch-seconds 1`
runs in this process on each; every outcome must be exit 0 (a valid spec) or exit 2 with exactly
one line on stderr. Anything else (a traceback, other output, more than TIMEOUT_S seconds) is a
failure, printed with the spec that caused it. Prints `N specs: V valid, E one-line errors,
0 tracebacks` and exits 0 only when nothing failed. The CI test
tests/search/test_plan_fuzz.py runs a few hundred.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import random
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
TIMEOUT_S = 20

#: Values of every type and size the validator must judge.
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    10**30,
    -(10**18),
    1e308,
    -1e-300,
    0.5,
    float("inf"),
    float("nan"),
    "",
    " ",
    "ünïcødé ☃ 中文",
    "\u202e\u0000x",
    "x" * 5000,
    "1e-3",
    "yes",
    [],
    [[]],
    {},
    {"": None},
    [1, "a", None],
    {"choice": []},
    {"choice": [1, 1]},
    {"choice": [{"uniform": [0, 1]}]},
    {"choice": "abc"},
    {"uniform": [1, 0]},
    {"uniform": [0, float("inf")]},
    {"uniform": ["a", "b"]},
    {"loguniform": [0, 1]},
    {"loguniform": [-1, 1]},
    {"int": [1.5, 3]},
    {"int": [0, 10**20]},
    {"int": [True, 3]},
    {"choice": [1], "uniform": [0, 1]},
    {"grid": [1, 2]},
    {"choice": [0.5, 0.7], "extra": 1},
]
#: Keys that exist only in another branch (docs/architecture.md) and section names to misplace.
CONDITIONAL = [
    ("prune.mrs.temperature", {"uniform": [0.1, 2]}),
    ("prune.mrs.band", {"choice": [0.1, 0.2]}),
    ("prune.mrs.steps", 3),
    ("finetune.trades.beta", {"uniform": [1, 8]}),
    ("finetune.mart.beta", {"choice": [2, 4]}),
    ("dense.beta", 3.0),
    ("prune.ratio", "uniform"),
    ("finetune.method", "none"),
    ("finetune.method", {"choice": ["none", "ce"]}),
    ("search.sampler", "nsgaii"),
    ("search.seeds", 3),
    ("search.num_samples", 10**9),
    ("search.seeds", 10**9),
    ("search.scheduler", {"name": "asha", "grace_period": 0}),
    ("search.objectives", ["params:min"]),
    ("search.mode", "grid"),
    ("search.mode", "random"),
    ("search.dedupe", "maybe"),
    ("seed", {"choice": [0, 1, 2]}),
    ("seed", {"uniform": [0, 1]}),
    ("name", {"choice": ["a", "b"]}),
    ("eval.finalists", 10**6),
    ("eval.autoattack", "finalists"),
    ("resources.gpu", 1.5),
    ("resources", {"cpu": 0}),
    ("storage", {"choice": ["a", "b"]}),
    ("data.dataset", {"choice": ["digits", "cifar10"]}),
    ("model.arch", {"choice": ["resnet18", "nope"]}),
    ("dense.epochs", {"int": [1, 5]}),
    ("prune.sparsity", {"choice": list(range(200))}),
    ("prune.criterion", {"choice": [f"c{i}" for i in range(50)]}),
]


@dataclass
class Outcome:
    kind: str  # valid | error | failure
    detail: str = ""


@dataclass
class Summary:
    count: int = 0
    valid: int = 0
    errors: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.count} specs: {self.valid} valid, {self.errors} one-line errors, "
            f"{len(self.failures)} tracebacks or other failures"
        )


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested mapping (lists are leaves)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    return out


def _set(tree: dict, path: tuple, value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _tree_mutation(tree: dict, rng: random.Random) -> str:
    """Change the loaded spec in place; returns what was done."""
    paths = _paths(tree)
    kind = rng.choice(["value", "value", "delete", "unknown", "conditional", "conditional"])
    if kind == "value" and paths:
        path = rng.choice(paths)
        value = copy.deepcopy(rng.choice(ODD_VALUES))
        _set(tree, path, value)
        return f"{'.'.join(map(str, path))} = {value!r:.60}"
    if kind == "delete" and paths:
        path = rng.choice(paths)
        node = tree
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
        return f"del {'.'.join(map(str, path))}"
    if kind == "unknown":
        parent = rng.choice([(), *[p for p in paths if len(p) < 3]])
        key = rng.choice(["bogus", "Prune", "épsilon", "", "1", "search ", "__class__"])
        _set(tree, (*parent, key), rng.choice(ODD_VALUES[:8]))
        return f"unknown key {'.'.join(map(str, (*parent, key)))}"
    path, value = rng.choice(CONDITIONAL)
    _set(tree, tuple(path.split(".")), copy.deepcopy(value))
    return f"{path} = {value!r:.60}"


def _text_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    """YAML oddities on the text itself."""
    choices: list[tuple[str, Callable[[str], str]]] = [
        ("tab indent", lambda t: t.replace("  ", "\t", 1)),
        ("duplicate key", lambda t: t + "\nname: again\nname: twice\n"),
        ("anchor merge", lambda t: "base: &b {method: ce}\n" + t + "\nfinetune: {<<: *b}\n"),
        ("python tag", lambda t: t + "\nbogus: !!python/object:os.system {}\n"),
        ("binary tag", lambda t: t + "\nname: !!binary aGVsbG8=\n"),
        ("timestamp", lambda t: t + "\nseed: 2024-01-01\n"),
        ("two documents", lambda t: t + "\n---\nname: second\n"),
        ("scalar at top", lambda t: "just a string\n"),
        ("list at top", lambda t: "- 1\n- 2\n"),
        ("empty file", lambda t: ""),
        ("only comments", lambda t: "# nothing\n"),
        ("deep nesting", lambda t: t + "\nprune: " + "[" * 600 + "]" * 600 + "\n"),
        ("deep mapping", lambda t: t + "\nprune: " + "{a: " * 500 + "1" + "}" * 500 + "\n"),
        ("alias bomb", _alias_bomb),
        ("complex key", lambda t: t + "\n? [a, b]\n: 1\n"),
        ("int key", lambda t: t + "\n1: one\n"),
        ("null key", lambda t: t + "\n~: nothing\n"),
        ("truncated", lambda t: t[: rng.randrange(1, max(2, len(t)))]),
        ("bad unicode", lambda t: t + "\nname: \udcff\n"),
        ("bom", lambda t: "\ufeff" + t),
        ("crlf", lambda t: t.replace("\n", "\r\n")),
        ("unclosed flow", lambda t: t + "\ndata: {dataset: [digits\n"),
        ("huge number", lambda t: t + "\nseed: 1" + "0" * 400 + "\n"),
        ("hex and octal", lambda t: t + "\nseed: 0x1F\nsearch: {num_samples: 0o17}\n"),
    ]
    name, change = rng.choice(choices)
    return change(text), name


def _alias_bomb(text: str) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]")
    return text + "\nprune:\n  record_mrs: *a8\n" + "\n".join("# " + s for s in lines) + "\n"


#: Changes that keep a spec valid (so valid specs of many shapes reach the plan itself).
VALID_TWEAKS = [
    ("search.num_samples", [1, 3, 17, 500]),
    ("search.max_concurrent", [1, 4, 64]),
    ("finetune.epochs", [0, 1, {"int": [1, 4]}, {"choice": [1, 3]}]),
    ("finetune.method", [{"choice": ["none", "fgsm_rs", "trades"]}, "mart", "ce"]),
    ("prune.sparsity", [{"uniform": [0.1, 0.9]}, 0.0, 0.95]),
    ("prune.criterion", [{"choice": ["taylor", "hessian", "bn_scale"]}]),
    ("eval.attacks", [["apgd_t"], ["cw30", "pgd5_l2", "fgsm"]]),
    ("model.arch", ["small_cnn", {"choice": ["digits_cnn", "small_cnn"]}]),
    ("data.train_limit", [50, 10_000]),
    ("resources", [{"cpu": 2, "gpu": 0}, {"cpu": 0.5}]),
]


def _valid_tweak(tree: dict, rng: random.Random) -> str:
    path, options = rng.choice(VALID_TWEAKS)
    value = copy.deepcopy(rng.choice(options))
    _set(tree, tuple(path.split(".")), value)
    return f"{path} = {value!r:.60}"


@functools.cache
def _base_tree(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def make_spec(rng: random.Random) -> tuple[str, str]:
    """One mutated spec as YAML text, and what was mutated."""
    from robprune.config.spec_yaml import dump_yaml

    base = rng.choice(EXAMPLES)
    tree = copy.deepcopy(_base_tree(base))
    done = [base.name]
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        done.append(_tree_mutation(tree, rng))
    if len(done) == 1 or rng.random() < 0.3:
        done.append(_valid_tweak(tree, rng))
    try:
        text = dump_yaml(tree)
    except Exception:  # noqa: BLE001 - an unrepresentable value: keep the original text
        text = base.read_text()
        done.append("(dump failed: original text)")
    if rng.random() < 0.35:
        text, name = _text_mutation(text, rng)
        done.append(name)
    return text, "; ".join(done)


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def run_plan(path: Path) -> Outcome:
    """`robprune plan PATH --epoch-seconds 1 --json` in this process, classified."""
    from cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["plan", str(path), "--epoch-seconds", "1", "--json"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except _Timeout:
        return Outcome("failure", f"more than {TIMEOUT_S} s")
    except BaseException:  # noqa: BLE001 - exactly what the fuzzer looks for
        return Outcome("failure", traceback.format_exc(limit=6))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = err.getvalue().splitlines()
    if code == 0:
        return Outcome("valid") if out.getvalue().strip() else Outcome("failure", "no output")
    if code == 2 and len(lines) == 1 and out.getvalue() == "":
        return Outcome("error", lines[0])
    return Outcome("failure", f"exit {code}, stderr {err.getvalue()[:2000]!r}")


def fuzz(
    count: int, seed: int, log: Callable[[str], None] | None = None, verbose: bool = False
) -> Summary:
    rng = random.Random(seed)
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="robprune-fuzz-") as tmp:
        path = Path(tmp) / "spec.yaml"
        for i in range(count):
            text, what = make_spec(rng)
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
            if verbose and log:
                log(f"[{i}] {what}")
            outcome = run_plan(path)
            summary.count += 1
            if outcome.kind == "valid":
                summary.valid += 1
            elif outcome.kind == "error":
                summary.errors += 1
            else:
                summary.failures.append((what, outcome.detail))
                if log:
                    tail = outcome.detail.strip().splitlines()[-1:] or [""]
                    log(f"[{i}] {what}\n    {tail[0]}")
    return summary


def _cap_memory(gib: float) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = int(gib * 2**30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="name each spec before its run")
    parser.add_argument(
        "--memory-gib",
        type=float,
        default=6.0,
        help="address-space cap of this process (a spec asking for billions of trials must be "
        "refused, not fill the memory; exceeding it is a MemoryError, counted as a failure)",
    )
    args = parser.parse_args(argv)
    _cap_memory(args.memory_gib)
    sys.path.insert(0, str(ROOT))
    start = time.perf_counter()
    summary = fuzz(args.count, args.seed, log=lambda m: print(m, flush=True), verbose=args.verbose)
    print(f"{summary.line()} ({time.perf_counter() - start:.0f} s, seed {args.seed})")
    return 0 if not summary.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
