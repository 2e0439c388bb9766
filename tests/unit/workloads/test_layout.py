"""tunedp's own CNNs compute channels-last, and that changes neither the function nor a seed's noise.

What :mod:`tunedp.workloads.layout` promises: every built-in model with a
convolution stores its weights channels-last and its convolutions really run
in that layout; the model is the same function with the same gradients as
its contiguous twin (up to float rounding); and a private step from one seed
moves both twins to the same parameters, because the noise is drawn in
logical order whatever a parameter's layout.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional

from tunedp.optim import make_generator, make_private
from tunedp.optim.noise import gaussian_noise_like
from tunedp.workloads import resolve_workload
from tunedp.workloads.metrics import cross_entropy_per_example

# (workload, variant): every built-in model that has a convolution.
CONVOLUTIONAL = [
    ("digits", "cnn"),
    ("fashion_mnist", "cnn"),
    ("fashion_mnist", "cnn_tempered"),
    ("mnist_public", "cnn_tempered"),
    ("fashion_mnist_scatternet", "cnn"),
]
CHANNELS_LAST = torch.channels_last


def _model_and_batch(workload: str, variant: str, size: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    spec = resolve_workload(workload)
    torch.manual_seed(0)
    model = spec.build_model(variant)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    # Probe the input shape the first convolution expects (pixels: 1 channel; ScatterNet: 81 × 7 × 7).
    side = {"digits": 8, "fashion_mnist_scatternet": 7}.get(workload, 28)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(size, first.in_channels, side, side, generator=generator)
    targets = torch.randint(0, 10, (size,), generator=generator)
    return model, inputs, targets


def _contiguous_twin(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in twin.parameters())
    return twin


@pytest.mark.parametrize(("workload", "variant"), CONVOLUTIONAL)
def test_built_in_convolutions_store_and_compute_channels_last(workload: str, variant: str) -> None:
    model, inputs, _ = _model_and_batch(workload, variant)
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions
    assert all(conv.weight.is_contiguous(memory_format=CHANNELS_LAST) for conv in convolutions)
    assert not all(conv.weight.is_contiguous() for conv in convolutions)  # the layout is not a no-op here
    outputs: list[torch.Tensor] = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for conv in convolutions]
    model(inputs)
    for hook in hooks:
        hook.remove()
    # What makes the step fast: the convolutions' outputs (and the pools after them) are channels-last.
    assert len(outputs) == len(convolutions)
    assert all(out.is_contiguous(memory_format=CHANNELS_LAST) and not out.is_contiguous() for out in outputs)


@pytest.mark.parametrize(("workload", "variant"), CONVOLUTIONAL)
def test_the_channels_last_model_is_the_same_function_with_the_same_gradients(workload: str, variant: str) -> None:
    model, inputs, targets = _model_and_batch(workload, variant)
    twin = _contiguous_twin(model)
    out, twin_out = model(inputs), twin(inputs)
    torch.testing.assert_close(out, twin_out, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(functional.cross_entropy(out, targets), list(model.parameters()))
    twin_grads = torch.autograd.grad(functional.cross_entropy(twin_out, targets), list(twin.parameters()))
    for grad, twin_grad in zip(grads, twin_grads, strict=True):
        torch.testing.assert_close(grad, twin_grad, rtol=1e-5, atol=1e-6)


def test_noise_is_drawn_in_logical_order_whatever_the_layout() -> None:
    weight = torch.empty(16, 3, 5, 5).to(memory_format=CHANNELS_LAST)
    drawn = gaussian_noise_like(weight, 0.7, make_generator(seed=3))
    contiguous = gaussian_noise_like(weight.contiguous(), 0.7, make_generator(seed=3))
    assert torch.equal(drawn, contiguous)
    # Not the memory-order draw that empty_like would give: the two orders differ.
    memory_order = torch.empty_like(weight).normal_(0.0, 0.7, generator=make_generator(seed=3))
    assert not torch.equal(memory_order, contiguous)


@pytest.mark.parametrize(("workload", "variant"), [("digits", "cnn"), ("fashion_mnist", "cnn_tempered")])
@pytest.mark.parametrize("clipping", ["ghost", "vmap"])
def test_a_seeded_private_step_moves_both_layouts_to_the_same_parameters(
    workload: str, variant: str, clipping: str
) -> None:
    model, inputs, targets = _model_and_batch(workload, variant)
    twin = _contiguous_twin(model)
    settings = {
        "optimizer": "dp_sgd",
        "hyperparameters": {"lr": 0.5, "clip_norm": 1.0},
        "sampling_rate": 0.01,
        "dataset_size": 2400,
        "noise_multiplier": 1.0,
        "steps": 10,
        "clipping": clipping,
    }
    before = [p.detach().clone() for p in model.parameters()]
    for trained in (model, twin):
        trainer = make_private(trained, generator=make_generator(seed=7), **settings)  # type: ignore[arg-type]
        trainer.step(inputs, targets, cross_entropy_per_example)
    moved = max((p - q).abs().max().item() for p, q in zip(model.parameters(), before, strict=True))
    assert moved > 1e-3  # the step did something (noise std here is lr·σ·C / (q·N) = 0.02)
    for param, twin_param in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(param, twin_param, rtol=1e-5, atol=1e-6)
