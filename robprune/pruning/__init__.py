"""Structured pruning: criteria, MRS, ratio allocation at an equal budget, Torch-Pruning."""

from robprune.pruning.allocation import (
    RATIO_RULES,
    AllocationParams,
    allocate_ratios,
    scale_aware_weights,
    solve_ratios,
    zscore_weights,
)
from robprune.pruning.apply import (
    PER_LAYER_LAMP,
    PruneOutcome,
    check_rule_criterion,
    count_macs_params,
    prune_model,
)
from robprune.pruning.bn import recalibrate_bn
from robprune.pruning.criteria import CRITERIA, get_criterion
from robprune.pruning.damage import uniform_probe_ratio
from robprune.pruning.groups import BUDGETS, build_group_model, default_ignored_layers
from robprune.pruning.mrs import (
    MRS_ESTIMATORS,
    DamageSetting,
    module_robust_sensitivity,
    zero_mrs_warnings,
)

__all__ = [
    "BUDGETS",
    "CRITERIA",
    "PER_LAYER_LAMP",
    "MRS_ESTIMATORS",
    "RATIO_RULES",
    "AllocationParams",
    "DamageSetting",
    "PruneOutcome",
    "allocate_ratios",
    "build_group_model",
    "check_rule_criterion",
    "count_macs_params",
    "default_ignored_layers",
    "get_criterion",
    "module_robust_sensitivity",
    "prune_model",
    "recalibrate_bn",
    "scale_aware_weights",
    "solve_ratios",
    "uniform_probe_ratio",
    "zero_mrs_warnings",
    "zscore_weights",
]
