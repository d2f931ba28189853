"""The typed trial config (docs/architecture.md; defaults in docs/CONTRACTS.md).

A config is a tree of frozen dataclasses built from plain dicts (YAML 1.2,
`robprune.config.spec_yaml`), so a search space is plain data and every trial can write its
fully resolved config beside its result. Each field declares what it accepts in its annotation
(`Interval`, `Choice`, `Check` from `robprune.config.typed_mapping`, the one validator); rules
that tie fields together are each section's `validate(path)`. Every error names the key path
and what is allowed: `finetune.trades.beta: must be in [0, 100], got -1`. Adding a field is one
line.
Torch-free: the search spec validator imports it before Ray starts. The allowed names are
`robprune.config.names`, the list the registries check themselves against.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from robprune.config.cache_dir import default_cache_dir
from robprune.config.data import DATASETS, DataConfig, SyntheticConfig, check_train_limit
from robprune.config.mrs import ASCENT_STEPS, MRSConfig
from robprune.config.names import (
    ARCHS,
    ATTACK_BN,
    ATTACK_BN_REFERENCE,
    AUTOATTACK_MODES,
    BAND_RULES,
    BAND_SCALES,
    BUDGETS,
    CRITERIA,
    FINETUNE_METHODS,
    MRS_ESTIMATORS,
    MRS_RATIO_RULES,
    NORMS,
    RATIO_RULES,
    SCHEDULES,
    TEMPERATURE_RULES,
    parse_attack_name,
)
from robprune.config.spec_yaml import apply_overrides, load_yaml
from robprune.config.threat import ResolvedThreat, ThreatConfig, threat_defaults
from robprune.config.typed_mapping import (
    Check,
    Choice,
    Interval,
    build,
    build_many,
    check_tree,
    to_plain,
)
from robprune.config.typed_mapping import require as _check

__all__ = [
    "SyntheticConfig",
    "DataConfig",
    "ModelConfig",
    "TrainRecipe",
    "DenseConfig",
    "MRSConfig",
    "PruneConfig",
    "BetaConfig",
    "FinetuneConfig",
    "ThreatConfig",
    "ResolvedThreat",
    "EvalConfig",
    "RuntimeConfig",
    "TrialConfig",
    "DATASETS",
    "ARCHS",
    "CRITERIA",
    "FINETUNE_METHODS",
    "SCHEDULES",
    "RATIO_RULES",
    "MRS_RATIO_RULES",
    "TEMPERATURE_RULES",
    "BAND_RULES",
    "BAND_SCALES",
    "MRS_ESTIMATORS",
    "ASCENT_STEPS",
    "AUTOATTACK_MODES",
    "NORMS",
    "SPEC_ONLY_KEYS",
    "parse_trial_config",
    "parse_trial_configs",
    "load_yaml",
    "apply_overrides",
    "threat_defaults",
    "check_train_limit",
]

DENSE_FORMATS = ("state_dict",)
#: Keys of a search spec that a single trial accepts and ignores.
SPEC_ONLY_KEYS = ("search", "resources", "storage")

_POSITIVE = Interval(0, lo_open=True)
_SEED = Interval(0, 2**31 - 1)


def _device(name: str) -> None:
    """auto, cpu, cuda or cuda:N."""
    if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", name):
        raise ValueError(f"unknown {name!r}; allowed: auto, cpu, cuda, cuda:N")


def _non_empty(items: tuple) -> None:
    if not items:
        raise ValueError("must name at least one attack")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    arch: Annotated[str, Choice(ARCHS)] = "digits_cnn"
    """Registry name, one of ARCHS (robprune.models.list_models())."""
    width: Annotated[float | None, _POSITIVE] = None
    """Width multiplier, or k for WideResNet; None is the architecture's default."""


@dataclass(frozen=True, kw_only=True)
class TrainRecipe:
    """What dense training and fine-tuning share: an SGD recipe with a schedule."""

    method: Annotated[str, Choice(FINETUNE_METHODS)] = "pgd_at"
    """Training loss: none, ce, pgd_at (Madry), trades, mart, fgsm_rs (fast AT)."""
    epochs: Annotated[int, Interval(0, 10_000)] = 10
    """Number of passes over the training split."""
    lr: Annotated[float, Interval(0, 10, lo_open=True)] = 0.01
    """Peak SGD learning rate."""
    schedule: Annotated[str, Choice(SCHEDULES)] = "cosine"
    """constant | step (x0.1 at 50% and 75%) | cosine | onecycle."""
    warmup_epochs: Annotated[int, Interval(0)] = 0
    """Linear warm-up from 0 to the peak; for onecycle it is the rising half (default 30%)."""
    batch_size: Annotated[int, Interval(1, 65_536)] = 128
    """Training batch size."""
    weight_decay: Annotated[float, Interval(0, 1)] = 5e-4
    """SGD weight decay."""
    momentum: Annotated[float, Interval(0, 1, hi_open=True)] = 0.9
    """SGD momentum (Nesterov off)."""
    attack_bn: Annotated[str | None, Choice(ATTACK_BN)] = None
    """Mode of the model while training examples are generated: train (batch statistics,
    updated by the attack's passes) or eval (running statistics); null is the method's
    reference code: train for pgd_at and fgsm_rs, eval for trades and mart (resolved and
    written with the results; no meaning for ce and none)."""

    def __post_init__(self) -> None:
        if self.attack_bn is None and self.method in ATTACK_BN_REFERENCE:
            object.__setattr__(self, "attack_bn", ATTACK_BN_REFERENCE[self.method])

    def validate(self, path: str) -> None:
        Interval(0, self.epochs).check(self.warmup_epochs, f"{path}.warmup_epochs")


@dataclass(frozen=True, kw_only=True)
class DenseConfig(TrainRecipe):
    method: Annotated[str, Choice(FINETUNE_METHODS)] = "pgd_at"
    epochs: Annotated[int, Interval(1, 10_000)] = 30
    lr: Annotated[float, Interval(0, 10, lo_open=True)] = 0.05
    beta: Annotated[float, Interval(0, 100)] = 6.0
    """TRADES/MART beta when method is trades or mart."""
    checkpoint: str | None = None
    """Bring your own dense model: a state dict file (e.g. from RobustBench's zoo) loaded
    instead of training; its key layout is mapped onto `model.arch` (robprune.models.checkpoints)
    and its SHA-256 is recorded. The training recipe above is then unused."""
    format: Annotated[str, Choice(DENSE_FORMATS)] = "state_dict"
    """What `checkpoint` holds: state_dict (tensors by name; loaded with weights_only=True)."""
    normalize: Annotated[str, Choice(("none", "dataset"))] = "none"
    """Input normalisation the brought model expects on [0, 1] pixels: none (RobustBench and
    AutoAttack's model_test.pt take raw pixels) or dataset (the data set's mean/std)."""

    def validate(self, path: str) -> None:
        super().validate(path)
        _check(
            self.checkpoint is None or bool(str(self.checkpoint).strip()),
            f"{path}.checkpoint",
            "must be a file path (or null to train the dense model)",
        )
        _check(
            self.method != "none",
            f"{path}.method",
            "a dense model must be trained; "
            f"allowed: {', '.join(m for m in FINETUNE_METHODS if m != 'none')}",
        )


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    sparsity: Annotated[float, Interval(0, 0.99)] = 0.5
    """Target fraction of the budget removed (every ratio rule meets the same one)."""
    budget: Annotated[str, Choice(BUDGETS)] = "params"
    """What `sparsity` is a fraction of: prunable parameters or prunable multiply-accumulates
    (PyTorch's FlopCounterMode / 2); both achieved fractions are reported."""
    criterion: Annotated[str, Choice(CRITERIA)] = "l1"
    """Channel importance inside a layer (CRITERIA). lamp is Torch-Pruning's group LAMP (not
    Lee et al.'s per-layer LAMP); it differs from l2 only under ratio: global, else it is
    resolved to l2 (PER_LAYER_LAMP). lamp_layer is the layer-wise reading (docs/mrs.md)."""
    ratio: Annotated[str, Choice(tuple(RATIO_RULES))] = "uniform"
    """Ratio rule (RATIO_RULES): uniform, mrs, mrs_band, mrs_zscore, or global (one ranking of
    per-group normalised criterion scores across groups) (docs/mrs.md)."""
    bn_recalibration: Annotated[int, Interval(0, 100_000)] = 10
    """Clean training batches over which BatchNorm statistics are re-estimated after pruning
    and inside prune_damage (AdaBN; forward passes only); 0 turns it off."""
    max_layer_ratio: Annotated[float, Interval(0, 1, lo_open=True, hi_open=True)] = 0.9
    """No layer loses more than this fraction of its channels."""
    mrs: MRSConfig = field(default_factory=MRSConfig)
    """MRS estimator and the rule's knobs (used by the MRS ratio rules)."""
    record_mrs: tuple[Annotated[str, Choice(MRS_ESTIMATORS)], ...] = ()
    """More MRS estimators to compute (cached) and record per layer in layers.parquet as
    `mrs_<estimator>`, under any ratio rule; they do not change the allocation."""

    def __post_init__(self) -> None:
        # lamp ranks a group's channels as l2 does; only the global ranking tells them apart.
        # Resolved (and written with the results) as l2 under per-layer rules, so a search
        # that crosses criteria with rules records what ran (docs/mrs.md, "global").
        if self.criterion == "lamp" and self.ratio != "global":
            object.__setattr__(self, "criterion", "l2")


@dataclass(frozen=True, kw_only=True)
class BetaConfig:
    beta: Annotated[float, Interval(0, 100)] = 6.0
    """Weight of the robust regulariser."""


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainRecipe):
    trades: BetaConfig = field(default_factory=BetaConfig)
    """TRADES beta (used by method: trades)."""
    mart: BetaConfig = field(default_factory=BetaConfig)
    """MART beta (used by method: mart)."""

    @property
    def beta(self) -> float | None:
        return {"trades": self.trades.beta, "mart": self.mart.beta}.get(self.method)


_ATTACK = Check(parse_attack_name)


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    attacks: Annotated[tuple[Annotated[str, _ATTACK], ...], Check(_non_empty)] = ("fgsm", "pgd20")
    """Attacks of the final evaluation: fgsm, pgdK, pgdK_l2, cwK, apgd_ce[K], apgd_t[K]."""
    primary: str = "pgd20"
    """Attack whose accuracy is `robust_acc` (must be in `attacks`)."""
    autoattack: Annotated[str, Choice(AUTOATTACK_MODES)] = "none"
    """The official AutoAttack (pyautoattack): none | standard (APGD-CE, APGD-T, FAB-T, Square,
    on every trial) | rand (for randomised models) | finalists (only on the best trials, after
    a search). Our own APGD is an attack name (apgd_ce, apgd_t), reported as apgd_acc."""
    autoattack_n: Annotated[int | None, Interval(1)] = None
    """AutoAttack on the first N test examples; null is all of them."""
    finalists: Annotated[int, Interval(1, 10_000)] = 5
    """How many of the best trials (by validation) the finalists stage re-evaluates."""
    batch_size: Annotated[int, Interval(1, 65_536)] = 256
    """Evaluation batch size."""
    epoch_attack: Annotated[str, _ATTACK] = "pgd10"
    """Cheaper attack on a fixed validation subset after every epoch (the search objective)."""
    epoch_subset: Annotated[int, Interval(1)] = 2000
    """Size of that validation subset: a stratified random draw with a fixed seed."""
    l2_epsilon: Annotated[float, Interval(0, 100, lo_open=True)] = 0.5
    """Radius of `pgdK_l2` attacks under an L-inf threat (an L-inf radius is no L2 one): 0.5,
    RobustBench's CIFAR-10 L2 radius, by default; recorded in the attack's config."""
    test_limit: Annotated[int | None, Interval(1)] = None
    """Evaluate on at most this many test examples, stratified, seed 0 (smoke tests)."""
    strong_images: Annotated[int, Interval(0)] = 1000
    """Test images of the strong response (our APGD-CE then APGD-T, worst case per image; not
    AutoAttack): a fixed stratified draw, all of the test split when smaller; 0: off."""
    strong_targets: Annotated[int, Interval(1, 1000)] = 3
    """APGD-T target classes of the strong response (AutoAttack uses 9; BENCHMARKS.md)."""

    def validate(self, path: str) -> None:
        _check(
            self.primary in self.attacks,
            f"{path}.primary",
            f"must be one of eval.attacks ({', '.join(self.attacks)}), got {self.primary!r}",
        )


_SWITCH = Choice(("auto", "on", "off"))


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """How the hot loops run (robprune.runtime): speed; results move only by rounding (bf16).

    `auto` picks per device (robprune.runtime.AUTO, figures in BENCHMARKS.md); `on` is honoured
    on every device, the CPU included. Not part of the dense-model cache key.
    """

    compile: Annotated[str, _SWITCH] = "auto"
    """torch.compile the training model: auto (off on CPU and, until measured, on CUDA)."""
    amp: Annotated[str, _SWITCH] = "auto"
    """bf16 autocast for training, attacks and MRS: auto (on CUDA, off on CPU)."""
    channels_last: Annotated[str, _SWITCH] = "auto"
    """NHWC weights and batches: auto (on; measured faster or equal on CPU too)."""
    data_on_device: Annotated[str, _SWITCH] = "auto"
    """Keep the training split on the device as uint8 when it fits: auto (when it fits)."""
    check_every: Annotated[int, Interval(0, 1_000_000)] = 50
    """Steps between reads of the non-finite-loss flag; 0 reads it once per epoch."""


@dataclass(frozen=True, kw_only=True)
class TrialConfig:
    name: str = "trial"
    """Human-readable name (the search names its trials)."""
    seed: Annotated[int, _SEED] = 0
    """Seed of the dense model, MRS examples, pruning randomness and fine-tuning."""
    device: Annotated[str, Check(_device)] = "auto"
    """auto (CUDA when available) | cpu | cuda | cuda:N."""
    cache_dir: str = field(default_factory=default_cache_dir)
    """Content-addressed cache of dense models and MRS scores (shared between trials);
    default `$ROBPRUNE_CACHE_DIR`, else the user's cache directory (config.cache_dir)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    threat: ThreatConfig = field(default_factory=ThreatConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

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

    @property
    def resolved_threat(self) -> ResolvedThreat:
        return ResolvedThreat(
            norm=self.threat.norm,
            epsilon=self.epsilon,
            step_size=self.step_size,
            train_steps=self.threat.train_steps,
            eval_steps=self.threat.eval_steps,
            l2_epsilon=self.eval.l2_epsilon,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config, JSON/YAML-safe (tuples become lists)."""
        return to_plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)


def parse_trial_config(data: Mapping[str, Any] | TrialConfig) -> TrialConfig:
    """Validate a nested mapping into a TrialConfig; raises ConfigError naming the key path."""
    if isinstance(data, TrialConfig):
        check_tree(data)
        return data
    return build(TrialConfig, data, "", ignore_top=SPEC_ONLY_KEYS)


def parse_trial_configs(datas: Iterable[Mapping[str, Any]]) -> list[TrialConfig]:
    """`parse_trial_config` of many configs that share most sections (a search grid's cells),
    each distinct section validated once: what makes planning a large grid quick."""
    return build_many(TrialConfig, datas, ignore_top=SPEC_ONLY_KEYS)
