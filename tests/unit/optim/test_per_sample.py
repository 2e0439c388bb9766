"""Per-example gradients against a loop of single-example backward passes; refused models."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional

from tunedp.optim import per_example_gradients
from tunedp.optim.independence import check_model
from tunedp.optim.per_sample import _chunks


def _loop_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for x, y in zip(inputs, targets, strict=True):
        model.zero_grad()
        functional.cross_entropy(model(x.unsqueeze(0)), y.unsqueeze(0)).backward()
        rows.append([p.grad.clone() for p in params])
    return [torch.stack(per_param) for per_param in zip(*rows, strict=True)]


@pytest.mark.parametrize("chunk_size", [1, 3, 256])
def test_matches_single_example_backward_mlp(mlp, batch, chunk_size):
    model = mlp()
    inputs, targets = batch(size=10)
    got = per_example_gradients(model, inputs, targets, functional.cross_entropy, chunk_size=chunk_size)
    want = _loop_gradients(model, inputs, targets)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_matches_single_example_backward_cnn(cnn):
    model = cnn()
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(7, 1, 8, 8, generator=generator)
    targets = torch.randint(0, 4, (7,), generator=generator)
    got = per_example_gradients(model, inputs, targets, functional.cross_entropy, chunk_size=4)
    for g, w in zip(got, _loop_gradients(model, inputs, targets), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_loss_reduction_does_not_matter(mlp, batch):
    model = mlp()
    inputs, targets = batch(size=5)
    results = [
        per_example_gradients(
            model, inputs, targets, lambda o, t, r=reduction: functional.cross_entropy(o, t, reduction=r)
        )
        for reduction in ("mean", "sum", "none")
    ]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b)


def test_frozen_parameters_are_skipped(mlp, batch):
    model = mlp()
    model[0].weight.requires_grad_(False)
    inputs, targets = batch(size=4)
    shapes = [g.shape for g in per_example_gradients(model, inputs, targets, functional.cross_entropy)]
    assert shapes == [(4, 5), (4, 3, 5), (4, 3)]


def test_empty_batch(mlp):
    model = mlp()
    got = per_example_gradients(model, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), functional.cross_entropy)
    assert [g.shape[0] for g in got] == [0, 0, 0, 0]


@pytest.mark.parametrize("norm", [nn.BatchNorm1d(5), nn.SyncBatchNorm(5)])
def test_batchnorm_refused(norm):
    model = nn.Sequential(nn.Linear(6, 5), norm, nn.Linear(5, 3))
    with pytest.raises(ValueError, match=r"BatchNorm .*mixes examples.*GroupNorm or LayerNorm") as info:
        check_model(model)
    assert "\n" not in str(info.value)


def test_groupnorm_accepted():
    check_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.LayerNorm([4, 6, 6])))


@pytest.mark.parametrize(
    ("size", "chunk", "want"), [(0, 4, []), (5, 5, [5]), (9, 4, [3, 3, 3]), (2049, 2048, [1025, 1024])]
)
def test_chunks_are_the_fewest_equal_passes(size, chunk, want):
    passes = list(_chunks(size, chunk))
    assert [rows.stop - rows.start for rows in passes] == want
    assert all(a.stop == b.start for a, b in itertools.pairwise(passes))
    assert not passes or (passes[0].start, passes[-1].stop) == (0, size)
