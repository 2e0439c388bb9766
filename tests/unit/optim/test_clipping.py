"""Flat clipping and the sensitivity bound it gives the privatized sum."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

from tunedp.optim import Privatizer, clip_factors, clipped_sum, per_example_norms


def test_norm_is_over_all_parameters_together():
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, 2, generator=generator), torch.randn(4, 5, generator=generator)]
    flat = torch.cat([g.flatten(1) for g in grads], dim=1)
    torch.testing.assert_close(per_example_norms(grads), flat.norm(dim=1))


def test_each_example_is_clipped_to_at_most_c_and_small_ones_are_kept():
    grads = [torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])]
    factors = clip_factors(per_example_norms(grads), clip_norm=1.0)
    torch.testing.assert_close(factors, torch.tensor([0.2, 1.0, 1.0]))
    torch.testing.assert_close(clipped_sum(grads, 1.0)[0], torch.tensor([0.9, 1.2]))


def test_clip_norm_must_be_positive():
    with pytest.raises(ValueError, match=r"^Expected clip_norm=0 > 0$"):
        clip_factors(torch.ones(2), clip_norm=0)


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=6),
    scale=st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
    clip_norm=st.floats(min_value=0.01, max_value=10.0),
    seed=st.integers(min_value=0, max_value=2**16),
    position=st.integers(min_value=0, max_value=6),
)
def test_adding_one_example_moves_the_sum_by_at_most_clip_norm(mlp, size, scale, clip_norm, seed, position):
    """Add/remove adjacency: however large the extra example's gradient, ‖Δ sum‖ ≤ C."""
    model = mlp(seed)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 6, generator=generator)
    targets = torch.randint(0, 3, (size,), generator=generator)
    extra_x = torch.randn(1, 6, generator=generator) * scale
    extra_y = torch.randint(0, 3, (1,), generator=generator)
    at = min(position, size)
    bigger_x = torch.cat([inputs[:at], extra_x, inputs[at:]])
    bigger_y = torch.cat([targets[:at], extra_y, targets[at:]])
    privatizer = Privatizer(model, expected_batch_size=4.0, chunk_size=3)
    small = privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=clip_norm)
    big = privatizer.clipped_sum(bigger_x, bigger_y, functional.cross_entropy, clip_norm=clip_norm)
    change = (Privatizer.flatten(big) - Privatizer.flatten(small)).norm().item()
    assert change <= clip_norm + 1e-5
