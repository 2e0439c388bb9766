"""Gradient canaries (tunedp/audit/canaries.py) through the optimizer's own per-example gradient code.

A canary row's per-example gradient must be the Dirac direction −g·e_j on
its own canary coordinate and zero on every model weight: g = 10·C for an
audit canary (clipping sets its norm to exactly C, and a missing clip leaves
10·C), g = 0.9·C for a reference canary (below the clip: left as it is). A
real row must keep its model output and gradient and have zero gradient on
every canary coordinate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunedp.audit.canaries import (
    CANARY_GRADIENT_FACTOR,
    REFERENCE_GRADIENT_FACTOR,
    GradientCanaries,
    MislabelledCanaries,
)
from tunedp.optim import clipped_sum, per_example_gradients, per_example_norms
from tunedp.workloads import resolve_workload
from tunedp.workloads.metrics import cross_entropy_per_example


@pytest.fixture(scope="module")
def digits_rows() -> tuple[torch.Tensor, torch.Tensor]:
    train = resolve_workload("digits").load().train
    return train.inputs[:8], train.targets[:8]


def test_gradient_canaries_are_diracs_of_norm_above_c(digits_rows: tuple[torch.Tensor, torch.Tensor]) -> None:
    inputs, targets = digits_rows
    clip = 0.7
    canaries = GradientCanaries(canaries=12, references=6, classes=10, clip_norm=clip, seed=3)
    torch.manual_seed(0)
    base = resolve_workload("digits").build_model(None)
    model = canaries.wrap_model(base)
    x, y = canaries.extend_training_set(inputs, targets)
    in_rows = np.flatnonzero(canaries.included)
    assert canaries.included.shape == (18,) and x.shape[0] == 8 + in_rows.size
    assert np.sum(in_rows < 12) > 0 and np.sum(in_rows >= 12) > 0  # both kinds in this seeded draw
    # Real rows: outputs unchanged by the wrapper.
    torch.testing.assert_close(model(inputs), base(inputs))
    grads = per_example_gradients(model, x, y, cross_entropy_per_example)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    canary_grad = grads[names.index("canary_coordinates")]
    model_grads = [g for name, g in zip(names, grads, strict=True) if name != "canary_coordinates"]
    assert torch.all(canary_grad[:8] == 0)  # real rows never touch a canary coordinate
    # Audit canaries (coordinates 0..11) at 10·C, references (12..17) at 0.9·C: written out, not derived.
    raw = {j: (10.0 if j < 12 else 0.9) * clip for j in in_rows}
    assert CANARY_GRADIENT_FACTOR == 10.0 and REFERENCE_GRADIENT_FACTOR == 0.9
    for row, j in enumerate(in_rows, start=8):
        expected = torch.zeros(18)
        expected[j] = -raw[j]
        torch.testing.assert_close(canary_grad[row], expected)
        assert all(torch.all(g[row] == 0) for g in model_grads)
    norms = per_example_norms(grads)
    torch.testing.assert_close(norms[8:], torch.tensor([raw[j] for j in in_rows]))
    # After the optimizer's clipping an audit canary contributes exactly C, a reference its own 0.9·C.
    summed = clipped_sum([g[8:] for g in grads], clip)[names.index("canary_coordinates")]
    expected_sum = torch.zeros(18)
    expected_sum[in_rows] = torch.tensor([-min(raw[j], clip) for j in in_rows])
    torch.testing.assert_close(summed, expected_sum)
    # A clip at 2·C lets an audit canary through at 2·C (what the clip check measures), a reference unchanged.
    doubled = clipped_sum([g[8:] for g in grads], 2 * clip)[names.index("canary_coordinates")]
    torch.testing.assert_close(
        doubled,
        torch.zeros(18).index_put_(
            (torch.from_numpy(in_rows),), torch.tensor([-min(raw[j], 2 * clip) for j in in_rows])
        ),
    )


def test_membership_is_seeded_only_when_asked() -> None:
    a = GradientCanaries(canaries=64, classes=10, clip_norm=1.0, seed=5).included
    b = GradientCanaries(canaries=64, classes=10, clip_norm=1.0, seed=5).included
    c = GradientCanaries(canaries=64, classes=10, clip_norm=1.0).included
    d = GradientCanaries(canaries=64, classes=10, clip_norm=1.0).included
    assert np.array_equal(a, b) and not np.array_equal(c, d)  # 2⁻⁶⁴ chance of a false failure


def test_mislabelled_canaries_carry_wrong_labels(digits_rows: tuple[torch.Tensor, torch.Tensor]) -> None:
    test = resolve_workload("digits").load().test
    canaries = MislabelledCanaries(inputs=test.inputs[:20], labels=test.targets[:20], classes=10, seed=1)
    assert torch.all(canaries.wrong_labels != test.targets[:20])
    x, _ = canaries.extend_training_set(*digits_rows)
    assert x.shape[0] == 8 + int(canaries.included.sum())
    torch.manual_seed(0)
    scores = canaries.scores_of(resolve_workload("digits").build_model(None))
    assert scores.shape == (20,) and np.all(scores < 0)
