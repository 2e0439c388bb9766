"""With σ = 0 and a huge clip norm the private rules are plain torch.optim on the same batches.

The privatized gradient is Σ∇ℓᵢ / qN, so q·N is set equal to the batch size
used here (8 = 0.25 · 32) and torch gets the mean loss of the same batch.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from tunedp.optim import CosineLr, LinearLr, make_private
from tunedp.optim.lr_schedule import CONSTANT_LR

BATCH, DATASET, RATE, STEPS = 8, 32, 0.25, 6


def _batches(batch):
    return [batch(size=BATCH, seed=seed) for seed in range(STEPS)]


@pytest.mark.parametrize(
    ("name", "hyperparameters", "reference"),
    [
        ("dp_sgd", {"lr": 0.3}, lambda p: torch.optim.SGD(p, lr=0.3)),
        (
            "dp_sgd",
            {"lr": 0.2, "momentum": 0.9, "weight_decay": 0.01},
            lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=0.01),
        ),
        (
            "dp_adam",
            {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        ),
        (
            "dp_adam",
            {"lr": 0.01, "weight_decay": 0.1},
            lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
        ),
    ],
)
def test_reproduces_torch_optim(mlp, batch, name, hyperparameters, reference):
    _assert_same_training(mlp, batch, name, hyperparameters, reference)


def _assert_same_training(mlp, batch, name, hyperparameters, reference, schedule=CONSTANT_LR, scheduler=None):
    """Train both on the same batches and compare every parameter (torch's scheduler steps after its step)."""
    private_model, plain_model = mlp(), mlp()
    trainer = make_private(
        private_model,
        optimizer=name,
        hyperparameters={**hyperparameters, "clip_norm": 1e6},
        sampling_rate=RATE,
        dataset_size=DATASET,
        noise_multiplier=0.0,
        steps=STEPS,
        lr_schedule=schedule,
    )
    optimizer = reference(plain_model.parameters())
    decay = scheduler(optimizer) if scheduler is not None else None
    for inputs, targets in _batches(batch):
        trainer.step(inputs, targets, functional.cross_entropy)
        optimizer.zero_grad()
        functional.cross_entropy(plain_model(inputs), targets).backward()
        optimizer.step()
        if decay is not None:
            decay.step()
    pairs = zip(private_model.parameters(), plain_model.parameters(), mlp().parameters(), strict=True)
    moved = False
    for mine, theirs, start in pairs:
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
        moved = moved or not torch.allclose(mine, start)
    assert moved


@pytest.mark.parametrize(
    ("name", "hyperparameters", "schedule", "reference", "scheduler"),
    [
        (
            "dp_sgd",
            {"lr": 0.2, "momentum": 0.9},
            CosineLr(final_fraction=0.1),
            lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.02),
        ),
        (
            "dp_adam",
            {"lr": 0.01, "weight_decay": 0.1},
            LinearLr(final_fraction=0.25),
            lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
            lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.25, total_iters=STEPS),
        ),
    ],
)
def test_lr_schedule_reproduces_torch_schedulers(mlp, batch, name, hyperparameters, schedule, reference, scheduler):
    """``lr_schedule`` is torch's scheduler of the same shape: lr (and decoupled decay) scaled per step."""
    _assert_same_training(mlp, batch, name, hyperparameters, reference, schedule, scheduler)
