"""Poisson sampling: batch sizes vary around qN, every example shows up, empty batches happen."""

from __future__ import annotations

import pytest
import torch

from tunedp.optim.poisson import (
    DRAW_RESOLUTION,
    PoissonSampler,
    inclusion_threshold,
    poisson_batches,
    poisson_indices,
)


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


# ---------------------------------------------------------------- PoissonSampler: reused buffers, blocks


def _sampler(columns, rate, seed):
    return PoissonSampler(columns, sampling_rate=rate, generator=torch.Generator().manual_seed(seed))


def test_sampler_draws_the_batches_of_poisson_batches():
    """Same generator → the very same rows, whether a column is one tensor or split into blocks."""
    x, y = torch.randn(50, 3, 2), torch.arange(50)
    want = list(poisson_batches([x, y], sampling_rate=0.2, steps=30, generator=torch.Generator().manual_seed(5)))
    whole = _sampler([x, y], 0.2, 5)
    blocks = _sampler([[x[:20], x[20:45], x[45:]], [y[:20], y[20:45], y[45:]]], 0.2, 5)
    for bx, by in want:
        for sampler in (whole, blocks):
            gx, gy = sampler.draw()
            assert torch.equal(gx, bx) and torch.equal(gy, by)
            assert gx.is_contiguous()


def test_sampler_reuses_its_buffers_and_grows_past_them():
    x = torch.randn(400, 5)
    sampler = _sampler([x], 0.05, 0)
    first = sampler.draw()[0]
    pointers = {sampler.draw()[0].data_ptr() for _ in range(20)}
    assert pointers == {first.data_ptr()}  # one buffer, no allocation per step
    sampler._capacity = 1  # a batch above the buffer: it grows, and the rows are still right
    reference = _sampler([x], 0.05, 7)
    sampler.generator = torch.Generator().manual_seed(7)
    for _ in range(5):
        got, want = sampler.draw()[0], reference.draw()[0]
        assert torch.equal(got, want)


def test_sampler_empty_batches_keep_their_shape():
    sampler = _sampler([torch.randn(20, 3, 4), torch.arange(20)], 0.01, 2)
    sizes = [sampler.draw()[0].shape for _ in range(50)]
    assert (0, 3, 4) in sizes


def test_sampler_refuses_mismatched_columns():
    with pytest.raises(ValueError, match=r"columns\[1\] holds 2 examples but columns\[0\] 3"):
        _sampler([torch.zeros(3), torch.zeros(2)], 0.5, 0)
    with pytest.raises(ValueError, match=r"columns\[0\]: its tensors differ in row shape, dtype or device"):
        _sampler([[torch.zeros(3, 2), torch.zeros(2, 3)]], 0.5, 0)
    with pytest.raises(ValueError, match=r"^Expected sampling_rate=1.5 in \(0, 1\]$"):
        _sampler([torch.zeros(3)], 1.5, 0)


def test_sampler_distribution_is_independent_bernoulli_per_row():
    """6000 draws of q = 0.1 over N = 200 rows split in two blocks: each row in w.p. q, independently.

    Checked: every row's inclusion count (Binomial(6000, q); all within 5 sd, and their χ² over the
    rows within 5 sd of its 199 degrees of freedom), the batch size's mean and variance (Nq, Nq(1 − q);
    correlated rows would move the variance), pairs of rows in the same step and one row in
    two consecutive steps (each in q² of the disjoint pairs).
    """
    steps, rows, rate = 6000, 200, 0.1
    sampler = _sampler([[torch.arange(120), torch.arange(120, 200)]], rate, 11)
    included = torch.zeros(steps, rows)
    for step in range(steps):
        included[step, sampler.draw()[0]] = 1
    counts = included.sum(0)
    mean, sd = steps * rate, (steps * rate * (1 - rate)) ** 0.5
    assert float((counts - mean).abs().max()) < 5 * sd
    chi2 = float(((counts - mean) ** 2).sum()) / sd**2
    assert abs(chi2 - (rows - 1)) < 5 * (2 * (rows - 1)) ** 0.5
    sizes = included.sum(1)
    assert abs(float(sizes.mean()) - rows * rate) < 5 * (rows * rate * (1 - rate) / steps) ** 0.5
    assert abs(float(sizes.var()) / (rows * rate * (1 - rate)) - 1) < 5 * (2 / steps) ** 0.5
    pairs = included[:, 0::2] * included[:, 1::2]  # rows 2k and 2k + 1 in the same step
    consecutive = included[0::2] * included[1::2]  # a row in steps 2t and 2t + 1
    for joint, trials in ((pairs, pairs.numel()), (consecutive, consecutive.numel())):
        expected = trials * rate**2
        assert abs(float(joint.sum()) - expected) < 5 * (expected * (1 - rate**2)) ** 0.5


@pytest.mark.parametrize("q", [0.1489, 2048 / 55000, 1 / 3, 0.5, 1.0, 1e-9])
def test_rows_are_never_drawn_above_the_charged_rate(q: float) -> None:
    """The inclusion probability is the threshold (a float32-exact multiple of 2⁻²⁴), at most q, within 2⁻²⁴."""
    threshold = inclusion_threshold(q)
    assert threshold <= q < threshold + DRAW_RESOLUTION
    assert float(torch.tensor(threshold, dtype=torch.float32)) == threshold  # compared without rounding
    # Every float32 draw on the grid just below and at the threshold lands on the right side of it.
    k = round(threshold / DRAW_RESOLUTION)
    grid = torch.tensor([max(k - 1, 0), k], dtype=torch.float32) * DRAW_RESOLUTION
    assert (grid < threshold).tolist() == ([k > 0, False])


def test_torch_draws_lie_on_the_2_pow_minus_24_grid() -> None:
    """The fact the threshold rests on: float32 uniforms are k·2⁻²⁴ (so P(draw < t) = t for t on the grid)."""
    draws = torch.rand(100_000, generator=torch.Generator().manual_seed(3)).double()
    scaled = draws / DRAW_RESOLUTION
    assert torch.equal(scaled, scaled.round()) and float(draws.min()) >= 0 and float(draws.max()) < 1
