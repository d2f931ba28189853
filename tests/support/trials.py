"""A fast digits trial config shared by the core and search tests."""

from __future__ import annotations

import copy


def fast_trial(cache_dir, **sections) -> dict:
    """A digits trial that runs in seconds on one CPU core; sections override by key."""
    config = {
        "name": "test",
        "seed": 0,
        "device": "cpu",
        "cache_dir": str(cache_dir),
        "data": {"dataset": "digits"},
        "model": {"arch": "small_cnn", "width": 0.5},
        "dense": {"method": "pgd_at", "epochs": 6, "lr": 0.05, "batch_size": 64},
        "prune": {
            "sparsity": 0.5,
            "criterion": "l1",
            "ratio": "uniform",
            "mrs": {"num_examples": 128},
        },
        "finetune": {"method": "pgd_at", "epochs": 2, "lr": 0.01, "batch_size": 64},
        "threat": {"train_steps": 3, "eval_steps": 5},
        "eval": {
            "attacks": ["fgsm", "pgd5"],
            "primary": "pgd5",
            "epoch_attack": "pgd3",
            "epoch_subset": 144,
            "test_limit": 200,
            "strong_images": 50,  # the strong response, kept cheap: 50 images, 1 target
            "strong_targets": 1,
        },
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **copy.deepcopy(value)}
        else:
            config[key] = value
    return config


def seeded_model(arch: str, *, width: float | None = None, shape=(1, 8, 8)):
    """A registry model with seed-0 weights and fixed normalisation, in eval mode."""
    import torch

    from robprune.models import create_model

    torch.manual_seed(0)
    model = create_model(
        arch,
        num_classes=10,
        input_shape=shape,
        mean=(0.5,) * shape[0],
        std=(0.25,) * shape[0],
        width=width,
    )
    return model.eval()
