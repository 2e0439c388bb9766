"""Poisson sampling: batch sizes vary around qN, every example shows up, empty batches happen."""

from __future__ import annotations

import pytest
import torch

from tunedp.optim.poisson import poisson_batches, poisson_indices


def test_mean_batch_size_is_qn_and_sizes_vary():
    """2000 steps of q = 0.05 over N = 400 (qN = 20): mean within 2% (≈ 4.5 standard errors)."""
    generator = torch.Generator().manual_seed(0)
    sizes = [len(poisson_indices(400, 0.05, generator=generator)) for _ in range(2000)]
    mean = sum(sizes) / len(sizes)
    assert abs(mean / 20 - 1) < 0.02
    assert len(set(sizes)) > 10  # binomial spread, not a fixed batch size


def test_every_example_appears_over_enough_steps():
    x = torch.arange(50).unsqueeze(1).float()
    generator = torch.Generator().manual_seed(1)
    seen = torch.cat([b[0].flatten() for b in poisson_batches([x], sampling_rate=0.1, steps=200, generator=generator)])
    assert set(seen.long().tolist()) == set(range(50))


def test_empty_batches_occur_for_tiny_rates_and_keep_their_shape():
    x, y = torch.randn(20, 3, 4), torch.arange(20)
    generator = torch.Generator().manual_seed(2)
    batches = list(poisson_batches([x, y], sampling_rate=0.01, steps=50, generator=generator))
    assert len(batches) == 50
    empty = [b for b in batches if b[0].shape[0] == 0]
    assert empty, "q·N = 0.2: most batches should be empty"
    assert empty[0][0].shape == (0, 3, 4) and empty[0][1].shape == (0,)


def test_rows_stay_aligned_across_tensors_and_are_reproducible():
    x, y = torch.randn(30, 2), torch.arange(30)

    def run():
        return list(poisson_batches([x, y], sampling_rate=0.3, steps=5, generator=torch.Generator().manual_seed(3)))

    for (bx, by), (cx, cy) in zip(run(), run(), strict=True):
        assert torch.equal(bx, x[by]) and torch.equal(bx, cx) and torch.equal(by, cy)


def test_rate_one_takes_everything():
    indices = poisson_indices(7, 1.0, generator=torch.Generator().manual_seed(0))
    assert indices.tolist() == list(range(7))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampling_rate": 0.0}, r"^Expected sampling_rate=0.0 in \(0, 1\]$"),
        ({"steps": -1}, r"^Expected steps=-1 to be an integer >= 0$"),
    ],
)
def test_bad_arguments_refused(kwargs, message):
    arguments = {"sampling_rate": 0.5, "steps": 1, "generator": torch.Generator(), **kwargs}
    with pytest.raises(ValueError, match=message):
        list(poisson_batches([torch.zeros(3)], **arguments))


def test_mismatched_tensors_refused():
    with pytest.raises(ValueError, match=r"tensors\[1\] holds 2 examples but tensors\[0\] 3"):
        list(poisson_batches([torch.zeros(3), torch.zeros(2)], sampling_rate=0.5, steps=1, generator=torch.Generator()))
