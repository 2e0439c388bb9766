"""Noise scale, the qN divisor, empty batches, the pre-clip hook and input validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional

from tunedp.optim import Privatizer, make_generator


def _wide(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(100, 100)  # 10_100 coordinates per noise draw


def test_noise_std_is_sigma_c_over_expected_batch_size():
    """Empty batch → pure noise; 5 draws × 10_100 coords; std within 3% of σC/(qN), mean ≈ 0."""
    sigma, clip_norm, expected = 1.3, 0.7, 25.0
    privatizer = Privatizer(_wide(), expected_batch_size=expected, generator=make_generator(seed=11))
    empty_x, empty_y = torch.zeros(0, 100), torch.zeros(0, dtype=torch.long)
    draws = torch.cat(
        [
            Privatizer.flatten(
                privatizer.privatize(
                    empty_x, empty_y, functional.cross_entropy, clip_norm=clip_norm, noise_multiplier=sigma
                )
            )
            for _ in range(5)
        ]
    )
    want = sigma * clip_norm / expected
    assert abs(draws.std().item() / want - 1) < 0.03
    assert abs(draws.mean().item()) < 0.03 * want


def test_divides_by_expected_not_realised_batch_size(mlp, batch):
    privatizer = Privatizer(mlp(), expected_batch_size=20.0)
    inputs, targets = batch(size=7)
    summed = privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.5)
    private = privatizer.privatize(inputs, targets, functional.cross_entropy, clip_norm=0.5, noise_multiplier=0.0)
    for s, p in zip(summed, private, strict=True):
        torch.testing.assert_close(p, s / 20.0)


def test_empty_batch_without_noise_is_zero(mlp):
    privatizer = Privatizer(mlp(), expected_batch_size=3.0)
    out = privatizer.privatize(
        torch.zeros(0, 6),
        torch.zeros(0, dtype=torch.long),
        functional.cross_entropy,
        clip_norm=1,
        noise_multiplier=0,
    )
    assert all(torch.count_nonzero(g) == 0 for g in out)


def test_hook_runs_before_clipping(mlp, batch):
    """A hook that inflates gradients ×1e6 cannot raise any example's contribution above C."""
    privatizer = Privatizer(mlp(), expected_batch_size=1.0, chunk_size=1)
    inputs, targets = batch(size=1)
    seen = []

    def inflate(gradients):
        seen.append([g.shape for g in gradients])
        return [g * 1e6 for g in gradients]

    out = privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.5, hook=inflate)
    assert seen == [[(1, 5, 6), (1, 5), (1, 3, 5), (1, 3)]]
    assert Privatizer.flatten(out).norm().item() == pytest.approx(0.5, rel=1e-5)


def test_seeded_generators_reproduce_and_secure_ones_differ(mlp, batch):
    inputs, targets = batch(size=4)

    def run(generator):
        privatizer = Privatizer(mlp(), expected_batch_size=4.0, generator=generator)
        out = privatizer.privatize(inputs, targets, functional.cross_entropy, clip_norm=1, noise_multiplier=1)
        return Privatizer.flatten(out)

    torch.testing.assert_close(run(make_generator(seed=5)), run(make_generator(seed=5)))
    assert not torch.equal(run(make_generator(secure=True)), run(make_generator(secure=True)))
    with pytest.raises(ValueError, match="secure=True takes no seed"):
        make_generator(secure=True, seed=1)


def test_parameters_share_storage_with_the_model(mlp):
    model = mlp()
    privatizer = Privatizer(model, expected_batch_size=1.0)
    with torch.no_grad():
        privatizer.parameters[0].add_(1.0)
    torch.testing.assert_close(privatizer.parameters[0], model[0].weight.detach())
    assert privatizer.names == ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_norm": 0.0, "noise_multiplier": 1.0}, r"^Expected clip_norm=0.0 > 0$"),
        ({"clip_norm": float("nan"), "noise_multiplier": 1.0}, r"^Expected clip_norm=nan > 0$"),
        ({"clip_norm": 1.0, "noise_multiplier": -1.0}, r"^Expected noise_multiplier=-1.0 >= 0$"),
    ],
)
def test_privatize_refuses_bad_numbers(mlp, batch, kwargs, message):
    inputs, targets = batch(size=2)
    with pytest.raises(ValueError, match=message):
        Privatizer(mlp(), expected_batch_size=1.0).privatize(inputs, targets, functional.cross_entropy, **kwargs)


def test_constructor_refuses_bad_numbers(mlp):
    with pytest.raises(ValueError, match=r"^Expected expected_batch_size=0.0 > 0$"):
        Privatizer(mlp(), expected_batch_size=0.0)
    with pytest.raises(ValueError, match=r"^Expected chunk_size=0 to be an integer >= 1$"):
        Privatizer(mlp(), expected_batch_size=1.0, chunk_size=0)


def test_mismatched_batch_refused(mlp, batch):
    inputs, targets = batch(size=3)
    with pytest.raises(ValueError, match="inputs hold 3 examples but targets 2"):
        Privatizer(mlp(), expected_batch_size=1.0).clipped_sum(
            inputs, targets[:2], functional.cross_entropy, clip_norm=1
        )
