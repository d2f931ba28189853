"""The typed trial config (DESIGN §2/§3; defaults in docs/CONTRACTS.md).

A config is a tree of frozen dataclasses built from plain dicts (YAML), so a search space is
plain data and every trial can write its fully resolved config beside its result. Every error
names the key path and what is allowed: `finetune.trades.beta: must be >= 0, got -1`.
Torch-free: the search spec validator imports it before Ray starts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from robprune.errors import ConfigError
from robprune.typed_mapping import apply_overrides, build, load_yaml, to_plain
from robprune.typed_mapping import require as _check
from robprune.typed_mapping import require_in as _in

__all__ = [
    "DataConfig",
    "ModelConfig",
    "TrainRecipe",
    "DenseConfig",
    "MRSConfig",
    "PruneConfig",
    "FinetuneConfig",
    "ThreatConfig",
    "EvalConfig",
    "TrialConfig",
    "DATASETS",
    "CRITERIA",
    "FINETUNE_METHODS",
    "SCHEDULES",
    "RATIO_RULES",
    "MRS_RATIO_RULES",
    "ARCHS",
    "SPEC_ONLY_KEYS",
    "parse_trial_config",
    "load_yaml",
    "apply_overrides",
    "threat_defaults",
]

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "svhn", "tinyimagenet")
CRITERIA = ("random", "l1", "l2", "taylor", "fpgm", "lamp", "bn_scale", "hessian")
FINETUNE_METHODS = ("none", "ce", "pgd_at", "trades", "mart", "fgsm_rs")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
RATIO_RULES = ("uniform", "mrs")
#: Ratio rules that read MRS scores: `prune.mrs.*` (its temperature too) applies only to these.
MRS_RATIO_RULES = ("mrs",)
#: Registered architectures (robprune.models.MODELS; a test keeps the two equal).
ARCHS = (
    "mobilenetv2",
    "mobilevit_xxs",
    "resnet18",
    "resnet34",
    "resnet50",
    "small_cnn",
    "vgg11_bn",
    "vgg16_bn",
    "vgg_small",
    "wrn28",
    "wrn28_10",
    "wrn28_4",
)
MRS_ESTIMATORS = ("first_order", "ascent")
#: Keys of a search spec that a single trial accepts and ignores.
SPEC_ONLY_KEYS = ("search", "resources", "storage")
_ATTACK_NAME = re.compile(r"^(fgsm|pgd[1-9]\d*(_l2)?|cw[1-9]\d*|apgd_ce(\d+)?|apgd_t(\d+)?)$")


def _range(
    value: float,
    path: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ConfigError(path, f"must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    dataset: str = "digits"
    """Registry name, one of DATASETS."""
    data_dir: str | None = None
    """Folder holding the data set in its standard on-disk layout (not needed for digits)."""
    download: bool = False
    """Download into `data_dir` when missing; never implicit."""
    val_fraction: float = 0.1
    """Validation split carved from training data: the search objective is measured on it."""
    train_limit: int | None = None
    """Use at most this many training examples (smoke tests, benchmarks)."""
    synthetic: dict = field(
        default_factory=lambda: {
            "shape": [3, 32, 32],
            "num_classes": 10,
            "train_size": 512,
            "test_size": 256,
        }
    )
    """Shape, sizes and generating `seed` of the `synthetic` data set (fixed across trials)."""

    def validate(self, path: str) -> None:
        _in(self.dataset, DATASETS, f"{path}.dataset")
        _range(self.val_fraction, f"{path}.val_fraction", 0, 0.5, lo_open=True)
        if self.train_limit is not None:
            _range(self.train_limit, f"{path}.train_limit", 1)
        allowed = {"shape", "num_classes", "train_size", "test_size", "seed"}
        for key in self.synthetic:
            _check(
                key in allowed,
                f"{path}.synthetic.{key}",
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
            )
        shape = self.synthetic.get("shape", [3, 32, 32])
        _check(
            isinstance(shape, list | tuple)
            and len(shape) == 3
            and all(isinstance(s, int) and s > 0 for s in shape),
            f"{path}.synthetic.shape",
            f"must be [C, H, W] positive integers, got {shape!r}",
        )
        for key in ("num_classes", "train_size", "test_size"):
            value = self.synthetic.get(key, 2)
            _check(
                isinstance(value, int) and value >= 2,
                f"{path}.synthetic.{key}",
                f"must be an integer >= 2, got {value!r}",
            )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    arch: str = "small_cnn"
    """Registry name, one of ARCHS (robprune.models.list_models())."""
    width: float | None = None
    """Width multiplier, or k for WideResNet; None is the architecture's default."""

    def validate(self, path: str) -> None:
        _in(self.arch, ARCHS, f"{path}.arch")
        if self.width is not None:
            _range(self.width, f"{path}.width", 0, lo_open=True)


@dataclass(frozen=True, kw_only=True)
class TrainRecipe:
    """What dense training and fine-tuning share: an SGD recipe with a schedule."""

    method: str = "pgd_at"
    """Training loss: none, ce, pgd_at (Madry), trades, mart, fgsm_rs (fast AT)."""
    epochs: int = 10
    """Number of passes over the training split."""
    lr: float = 0.01
    """Peak SGD learning rate."""
    schedule: str = "cosine"
    """constant | step (x0.1 at 50% and 75%) | cosine | onecycle."""
    warmup_epochs: int = 0
    """Linear warm-up from 0 before the schedule (not with onecycle, which has its own)."""
    batch_size: int = 128
    """Training batch size."""
    weight_decay: float = 5e-4
    """SGD weight decay."""
    momentum: float = 0.9
    """SGD momentum (Nesterov off)."""

    def validate(self, path: str) -> None:
        _in(self.method, FINETUNE_METHODS, f"{path}.method")
        _range(self.epochs, f"{path}.epochs", 0, 10_000)
        _range(self.lr, f"{path}.lr", 0, 10, lo_open=True)
        _in(self.schedule, SCHEDULES, f"{path}.schedule")
        _range(self.warmup_epochs, f"{path}.warmup_epochs", 0, self.epochs)
        _range(self.batch_size, f"{path}.batch_size", 1, 65_536)
        _range(self.weight_decay, f"{path}.weight_decay", 0, 1)
        _range(self.momentum, f"{path}.momentum", 0, 1, hi_open=True)


@dataclass(frozen=True, kw_only=True)
class DenseConfig(TrainRecipe):
    method: str = "pgd_at"
    epochs: int = 30
    lr: float = 0.05
    beta: float = 6.0
    """TRADES/MART beta when method is trades or mart."""

    def validate(self, path: str) -> None:
        super().validate(path)
        _check(
            self.method != "none",
            f"{path}.method",
            "a dense model must be trained; "
            f"allowed: {', '.join(m for m in FINETUNE_METHODS if m != 'none')}",
        )
        _range(self.epochs, f"{path}.epochs", 1, 10_000)
        _range(self.beta, f"{path}.beta", 0, 100)


@dataclass(frozen=True, kw_only=True)
class MRSConfig:
    """Module Robust Sensitivity: this project's reading of the paper (DESIGN §2), pluggable."""

    estimator: str = "first_order"
    """first_order (eps*||theta||*||grad||, one backward) or ascent (projected gradient ascent)."""
    temperature: float = 1.0
    """Allocation temperature: large -> uniform, small -> prune low-MRS layers first."""
    epsilon: float = 0.1
    """Relative radius of the weight perturbation ball, ||dtheta|| <= eps*||theta||."""
    steps: int = 5
    """Gradient-ascent steps for the ascent estimator."""
    num_examples: int = 256
    """Fixed PGD examples from the training split on which MRS is measured."""

    def validate(self, path: str) -> None:
        _in(self.estimator, MRS_ESTIMATORS, f"{path}.estimator")
        _range(self.temperature, f"{path}.temperature", 0, lo_open=True)
        _range(self.epsilon, f"{path}.epsilon", 0, 10, lo_open=True)
        _range(self.steps, f"{path}.steps", 1, 1000)
        _range(self.num_examples, f"{path}.num_examples", 1, 1_000_000)


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    sparsity: float = 0.5
    """Target fraction of prunable parameters removed (the budget both rules meet)."""
    criterion: str = "l1"
    """Channel importance inside a layer (CRITERIA)."""
    ratio: str = "uniform"
    """Per-layer ratio rule: uniform or mrs."""
    max_layer_ratio: float = 0.9
    """No layer loses more than this fraction of its channels."""
    mrs: MRSConfig = field(default_factory=MRSConfig)
    """MRS estimator and allocation temperature (used by ratio: mrs)."""

    def validate(self, path: str) -> None:
        _range(self.sparsity, f"{path}.sparsity", 0, 0.99, hi_open=False)
        _in(self.criterion, CRITERIA, f"{path}.criterion")
        _in(self.ratio, RATIO_RULES, f"{path}.ratio")
        _range(self.max_layer_ratio, f"{path}.max_layer_ratio", 0, 1, lo_open=True, hi_open=True)
        self.mrs.validate(f"{path}.mrs")


@dataclass(frozen=True, kw_only=True)
class BetaConfig:
    beta: float = 6.0
    """Weight of the robust regulariser."""

    def validate(self, path: str) -> None:
        _range(self.beta, f"{path}.beta", 0, 100)


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainRecipe):
    trades: BetaConfig = field(default_factory=BetaConfig)
    """TRADES beta (used by method: trades)."""
    mart: BetaConfig = field(default_factory=BetaConfig)
    """MART beta (used by method: mart)."""

    def validate(self, path: str) -> None:
        super().validate(path)
        self.trades.validate(f"{path}.trades")
        self.mart.validate(f"{path}.mart")

    @property
    def beta(self) -> float | None:
        return {"trades": self.trades.beta, "mart": self.mart.beta}.get(self.method)


def threat_defaults(dataset: str) -> tuple[float, float]:
    """(epsilon, PGD step size) per data set: 8/255 and 2/255 where pixels are 8-bit images.

    Digits are 8x8 with 17 grey levels: eps 0.1 (1.6 levels) is strong but not trivial.
    """
    if dataset == "digits":
        return 0.1, 0.025
    return 8 / 255, 2 / 255


@dataclass(frozen=True, kw_only=True)
class ThreatConfig:
    norm: Literal["linf", "l2"] = "linf"
    """Threat-model norm for training and the primary evaluation."""
    epsilon: float | None = None
    """Perturbation budget in [0,1] pixel units; None is the data set's default."""
    step_size: float | None = None
    """PGD step size; None is the data set's default (eps/4 for L-inf)."""
    train_steps: int = 10
    """PGD steps when generating training examples (pgd_at, trades, mart, MRS)."""
    eval_steps: int = 20
    """PGD steps of the `pgd_acc` column."""

    def validate(self, path: str) -> None:
        _in(self.norm, ("linf", "l2"), f"{path}.norm")
        if self.epsilon is not None:
            _range(self.epsilon, f"{path}.epsilon", 0, 10, lo_open=True)
        if self.step_size is not None:
            _range(self.step_size, f"{path}.step_size", 0, 10, lo_open=True)
        _range(self.train_steps, f"{path}.train_steps", 1, 1000)
        _range(self.eval_steps, f"{path}.eval_steps", 1, 10_000)


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    attacks: tuple[str, ...] = ("fgsm", "pgd20")
    """Attacks of the final evaluation: fgsm, pgdK, pgdK_l2, cwK, apgd_ce, apgd_t."""
    primary: str = "pgd20"
    """Attack whose accuracy is `robust_acc` (must be in `attacks`)."""
    autoattack: str = "none"
    """none | all | finalists: also run APGD-CE + APGD-T (our APGD, labelled APGD)."""
    batch_size: int = 256
    """Evaluation batch size."""
    epoch_attack: str = "pgd10"
    """Cheaper attack on a fixed validation subset after every epoch."""
    epoch_subset: int = 2000
    """Size of that validation subset."""
    test_limit: int | None = None
    """Evaluate on at most this many test examples (smoke tests)."""

    def validate(self, path: str) -> None:
        _check(len(self.attacks) > 0, f"{path}.attacks", "must name at least one attack")
        for i, name in enumerate(self.attacks):
            _check(
                isinstance(name, str) and bool(_ATTACK_NAME.match(name)),
                f"{path}.attacks[{i}]",
                f"unknown attack {name!r}; allowed: fgsm, pgdK, pgdK_l2, cwK, apgd_ce, apgd_t",
            )
        _check(
            self.primary in self.attacks,
            f"{path}.primary",
            f"must be one of eval.attacks ({', '.join(self.attacks)}), got {self.primary!r}",
        )
        _in(self.autoattack, ("none", "all", "finalists"), f"{path}.autoattack")
        _range(self.batch_size, f"{path}.batch_size", 1, 65_536)
        _check(
            bool(_ATTACK_NAME.match(str(self.epoch_attack))),
            f"{path}.epoch_attack",
            f"unknown attack {self.epoch_attack!r}; allowed: fgsm, pgdK, pgdK_l2, cwK",
        )
        _range(self.epoch_subset, f"{path}.epoch_subset", 1)
        if self.test_limit is not None:
            _range(self.test_limit, f"{path}.test_limit", 1)


@dataclass(frozen=True, kw_only=True)
class TrialConfig:
    name: str = "trial"
    """Human-readable name (the search names its trials)."""
    seed: int = 0
    """Seed of the dense model, MRS examples, pruning randomness and fine-tuning."""
    device: str = "auto"
    """auto (CUDA when available) | cpu | cuda | cuda:N."""
    cache_dir: str = "./.cache/robprune"
    """Content-addressed cache of dense models and MRS scores (shared between trials)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    threat: ThreatConfig = field(default_factory=ThreatConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self, path: str = "") -> None:
        _range(self.seed, "seed", 0, 2**31 - 1)
        _check(
            bool(re.match(r"^(auto|cpu|cuda(:\d+)?)$", self.device)),
            "device",
            f"unknown {self.device!r}; allowed: auto, cpu, cuda, cuda:N",
        )
        for section in ("data", "model", "dense", "prune", "finetune", "threat", "eval"):
            getattr(self, section).validate(section)

    @property
    def epsilon(self) -> float:
        return self.threat.epsilon or threat_defaults(self.data.dataset)[0]

    @property
    def step_size(self) -> float:
        if self.threat.step_size is not None:
            return self.threat.step_size
        if self.threat.epsilon is not None:
            return self.threat.epsilon / 4
        return threat_defaults(self.data.dataset)[1]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config, JSON/YAML-safe (tuples become lists)."""
        return to_plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)


def parse_trial_config(data: Mapping[str, Any] | TrialConfig) -> TrialConfig:
    """Validate a nested mapping into a TrialConfig; raises ConfigError naming the key path."""
    if isinstance(data, TrialConfig):
        return data
    config = build(TrialConfig, data, "", ignore_top=SPEC_ONLY_KEYS)
    config.validate()
    return config
