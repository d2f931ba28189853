"""What one trial and one dense model compute, counted without running anything (torch-free).

The unit is the image-pass: one forward and backward pass of one image. An epoch of PGD-AT
with K attack steps costs K + 1 image-passes per training image; an evaluation under PGD-K
costs about K per test image. What drives a search's cost is therefore attack steps x epochs x
images, and that is what `robprune plan` prints. Seconds come from `search.plan.calibrate`
(measured per architecture, input shape and training method) or from `--epoch-seconds`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from robprune.config import MRS_RATIO_RULES, TrialConfig
from robprune.config.names import parse_attack_name
from robprune.io.cache_keys import mrs_inputs

__all__ = [
    "FORWARD",
    "NOMINAL_SIZES",
    "DataShape",
    "Stage",
    "TrialWork",
    "data_shape",
    "train_passes",
    "attack_passes",
    "trial_work",
    "DenseWork",
    "dense_work",
    "prunings",
    "CachedWork",
    "cached_work",
]

#: A forward pass alone, as a fraction of a forward and backward pass.
FORWARD = 1 / 3
#: (training images before the validation split, test images, (C, H, W), classes) of the
#: data sets read from disk; `synthetic` takes its sizes from `data.synthetic`.
NOMINAL_SIZES: dict[str, tuple[int, int, tuple[int, int, int], int]] = {
    "digits": (1438, 359, (1, 8, 8), 10),
    "cifar10": (50_000, 10_000, (3, 32, 32), 10),
    "cifar100": (50_000, 10_000, (3, 32, 32), 100),
    "svhn": (73_257, 26_032, (3, 32, 32), 10),
    "tinyimagenet": (100_000, 10_000, (3, 64, 64), 200),
}
#: APGD-T's target classes (robprune.attacks.registry), at most classes - 1.
APGD_TARGETS = 9
#: Image-passes per test image of the official AutoAttack's standard version, roughly:
#: APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100, Square 5000 queries (forward only).
AUTOATTACK_PASSES = 100 + 900 + 900 + 5000 * FORWARD
#: Steps of each APGD run of the strong response (robprune.evaluation.strong.STRONG_STEPS).
STRONG_STEPS = 100
#: Output groups whose pruning damage `prune_damage` measures (a typical CNN's count).
DAMAGE_GROUPS = 10


@dataclass(frozen=True, kw_only=True)
class DataShape:
    """The sizes a trial works on, from the config alone (no data is read)."""

    dataset: str
    train: int
    val: int
    test: int
    shape: tuple[int, int, int]
    classes: int


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of the work: image-passes, and what makes them (for the 'drivers' line)."""

    name: str
    passes: float
    why: str
    fewest: float | None = None
    """Image-passes at the stage's other extreme, where its `passes` are an upper bound that
    depends on the model (the strong response: APGD-T on no image); None: `passes` exact."""


@dataclass(frozen=True, kw_only=True)
class TrialWork:
    """A trial's work: per fine-tuning epoch (training and the per-epoch evaluation) and once."""

    epochs: int
    train_images: int
    """Images per fine-tuning epoch (whole batches, as the trainer runs them)."""
    batch_size: int
    method: str
    train_steps: int
    epoch_eval: Stage
    once: tuple[Stage, ...]

    @property
    def epoch_train(self) -> Stage:
        per = train_passes(self.method, self.train_steps)
        return Stage(
            name="fine-tuning",
            passes=self.train_images * per,
            why=f"{self.method}: {per:g} passes x {self.train_images} images",
        )


def data_shape(config: TrialConfig) -> DataShape:
    """Split sizes as `robprune.data.load_data` carves them (val from train, limits applied)."""
    data = config.data
    if data.dataset == "synthetic":
        syn = data.synthetic
        full, test, shape, classes = syn.train_size, syn.test_size, syn.shape, syn.num_classes
    else:
        full, test, shape, classes = NOMINAL_SIZES[data.dataset]
    val = max(1, round(data.val_fraction * full))
    train = full - val
    if data.train_limit is not None:
        train = min(train, data.train_limit)
    if config.eval.test_limit is not None:
        test = min(test, config.eval.test_limit)
    c, h, w = (int(v) for v in shape)
    return DataShape(
        dataset=data.dataset, train=train, val=val, test=test, shape=(c, h, w), classes=classes
    )


def train_passes(method: str, steps: int) -> float:
    """Image-passes per training image and step of a training objective (training.losses)."""
    return {
        "none": 0.0,
        "ce": 1.0,
        "fgsm_rs": 2.0,
        "pgd_at": steps + 1.0,
        "trades": steps + 2.0 + FORWARD,
        "mart": steps + 2.0,
    }[method]


def attack_passes(name: str, classes: int) -> float:
    """Image-passes per image of one attack, counting its final forward (an upper bound for
    APGD-T, which attacks only the examples still robust)."""
    parsed = parse_attack_name(name)
    steps = float(parsed.steps)
    if parsed.kind == "apgd_t":
        steps *= max(1, min(APGD_TARGETS, classes - 1))
    return steps + FORWARD


def _whole_batches(images: int, batch: int) -> int:
    """Images the trainer sees per epoch: it drops the last partial batch of a larger split."""
    return images if images <= batch else (images // batch) * batch


def _estimators(config: TrialConfig) -> list[str]:
    """The MRS estimators a trial computes (robprune.trial.prepare): the rule's, then recorded."""
    prune = config.prune
    names = [prune.mrs.estimator] if prune.ratio in MRS_RATIO_RULES else []
    return names + [e for e in prune.record_mrs if e not in names]


def prunings(config: TrialConfig) -> int:
    """Structured prunings a trial runs itself (`prune_damage`'s are in its `CachedWork`)."""
    return 0 if config.prune.sparsity == 0 else 1


@dataclass(frozen=True, kw_only=True)
class CachedWork:
    """Work whose result is cached beside the dense model (an MRS estimator's values): only
    the first trial that needs it does it, every later one reads it."""

    key: str
    """The dense model and the cache name (`robprune.io.cache_keys.mrs_inputs`)."""
    stage: Stage
    prunings: int
    """Structured prunings it runs (`prune_damage`: one per group)."""


def _dense_identity(config: TrialConfig) -> str:
    """Which dense model a trial starts from, as the plan can tell without reading files."""
    tree = config.to_dict()
    return json.dumps(
        [config.seed, *(tree[s] for s in ("data", "model", "dense", "threat"))],
        sort_keys=True,
        default=str,
    )


def _examples(config: TrialConfig, sizes: DataShape) -> int:
    prune = config.prune
    needs = bool(_estimators(config)) or prune.criterion in ("taylor", "hessian")
    return min(prune.mrs.num_examples, sizes.train) if needs else 0


def cached_work(config: TrialConfig) -> tuple[CachedWork, ...]:
    """The trial's MRS estimators, each cached beside its dense model under its inputs' name."""
    names = _estimators(config)
    if not names:
        return ()
    n = _examples(config, data_shape(config))
    dense = _dense_identity(config)
    mrs = config.prune.mrs
    # prune.mrs.reattack: each group's pruned copy is attacked anew, as the calibration PGD
    reattack = float(config.threat.train_steps) if mrs.reattack else 0.0
    out = []
    for name in names:
        per = {
            "first_order": 1.0,
            "ascent": float(mrs.steps or 5),
            "prune_damage": DAMAGE_GROUPS * (FORWARD + reattack),
        }[name]
        out.append(
            CachedWork(
                key=f"{dense}/{mrs_inputs(config, name).name()}",
                stage=Stage(name="MRS / scores", passes=n * per, why=f"{name}: {n} x {per:.0f}"),
                prunings=DAMAGE_GROUPS if name == "prune_damage" else 0,
            )
        )
    return tuple(out)


def _prepare(config: TrialConfig, sizes: DataShape) -> Stage:
    """Every trial's own part of the preparation: its calibration examples (PGD on
    `mrs.num_examples` training images) and Taylor/Hessian scores; the estimators' values are
    `cached_work`."""
    n = _examples(config, sizes)
    per = float(config.threat.train_steps) if n else 0.0
    if config.prune.criterion in ("taylor", "hessian"):
        per += 1.0
    return Stage(name="MRS / scores", passes=n * per, why=f"{n} examples x {per:.0f} passes")


def _final_eval(config: TrialConfig, sizes: DataShape, subset: int) -> Stage:
    # the pgd_acc column's attack runs even when eval.attacks omits it (trial.metrics)
    names = list(dict.fromkeys([*config.eval.attacks, f"pgd{config.threat.eval_steps}"]))
    per_test = FORWARD + sum(attack_passes(n, sizes.classes) for n in names)
    if config.eval.autoattack in ("standard", "rand"):
        n_aa = min(sizes.test, config.eval.autoattack_n or sizes.test)
        per_test += AUTOATTACK_PASSES * n_aa / max(1, sizes.test)
    val = subset * (attack_passes(config.eval.epoch_attack, sizes.classes) + FORWARD)
    return Stage(
        name="final evaluation",
        passes=sizes.test * per_test + val,
        why=f"{'+'.join(names)}: {per_test:.0f} passes x {sizes.test} test images",
    )


def _strong_eval(config: TrialConfig, sizes: DataShape) -> Stage:
    """The strong response: APGD-CE, then APGD-T towards `strong_targets` classes, on
    `strong_images` test images (an upper bound: each attack runs only on the images the
    model still gets right, so a less robust model costs less)."""
    n = min(config.eval.strong_images, sizes.test)
    targets = max(1, min(config.eval.strong_targets, sizes.classes - 1))
    per = FORWARD + (STRONG_STEPS + FORWARD) * (1 + targets)
    return Stage(
        name="strong response",
        passes=n * per,
        why=f"apgd_ce+apgd_t{targets}: at most {per:.0f} passes x {n} test images",
        fewest=n * (FORWARD + STRONG_STEPS + FORWARD),  # APGD-CE broke every image
    )


def trial_work(config: TrialConfig) -> TrialWork:
    """The work of one trial of this config, at its full number of fine-tuning epochs."""
    sizes = data_shape(config)
    ft = config.finetune
    subset = min(config.eval.epoch_subset, sizes.val)
    per_val = attack_passes(config.eval.epoch_attack, sizes.classes) + FORWARD
    epochs = ft.epochs if ft.method != "none" else 0
    return TrialWork(
        epochs=epochs,
        train_images=_whole_batches(sizes.train, ft.batch_size),
        batch_size=ft.batch_size,
        method=ft.method,
        train_steps=config.threat.train_steps,
        epoch_eval=Stage(
            name="per-epoch evaluation",
            passes=subset * per_val,
            why=f"{config.eval.epoch_attack}: {per_val:.0f} passes x {subset} val images",
        ),
        once=(
            _prepare(config, sizes),
            _final_eval(config, sizes, subset),
            *([_strong_eval(config, sizes)] if config.eval.strong_images > 0 else []),
        ),
    )


@dataclass(frozen=True, kw_only=True)
class DenseWork:
    """Training a dense model (`images` image-steps of `method`) and its cached evaluation."""

    method: str
    train_steps: int
    images: int
    """Images seen over all its epochs (0 for a brought checkpoint)."""
    evaluation: float
    """Image-passes of its evaluation under the primary attack."""
    why: str


def dense_work(config: TrialConfig) -> DenseWork:
    """Training (and the cached evaluation of) the dense model this config uses."""
    sizes = data_shape(config)
    dense = config.dense
    evaluation = sizes.test * (attack_passes(config.eval.primary, sizes.classes) + FORWARD)
    steps = config.threat.train_steps
    if dense.checkpoint is not None:
        why = "brought checkpoint: evaluation only"
        return DenseWork(
            method="none", train_steps=steps, images=0, evaluation=evaluation, why=why
        )
    per = train_passes(dense.method, steps)
    images = _whole_batches(sizes.train, dense.batch_size)
    return DenseWork(
        method=dense.method,
        train_steps=steps,
        images=dense.epochs * images,
        evaluation=evaluation,
        why=f"{dense.method}: {per:g} passes x {dense.epochs} epochs x {images} images",
    )
