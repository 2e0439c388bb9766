"""Book-keeping ghost clipping against the vmap path: norms, clipped sums, sensitivity, fallbacks."""

from __future__ import annotations

import pytest
import torch
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import vmap
from torch.nn import functional

import tunedp.optim.ghost_layers as ghost_layers
from tunedp.optim import Privatizer, make_generator, make_private
from tunedp.optim.ghost import summed_loss
from tunedp.optim.independence import BatchMixingError
from tunedp.workloads import resolve_workload
from tunedp.workloads.adult import FEATURES
from tunedp.workloads.metrics import cross_entropy_per_example

# (workload, variant, input shape of one example, classes)
BUILT_IN = [
    ("digits", "mlp", (1, 8, 8), 10),
    ("digits", "cnn", (1, 8, 8), 10),
    ("adult", "logreg", (len(FEATURES),), 2),
    ("adult", "mlp", (len(FEATURES),), 2),
    ("fashion_mnist", "cnn", (1, 28, 28), 10),
]


def _data(shape: tuple[int, ...], classes: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, *shape, generator=generator), torch.randint(0, classes, (size,), generator=generator)


def _pair(model: nn.Module, **kwargs: object) -> tuple[Privatizer, Privatizer]:
    vmapped = Privatizer(model, expected_batch_size=1.0, clipping="vmap", **kwargs)  # type: ignore[arg-type]
    ghosted = Privatizer(model, expected_batch_size=1.0, clipping="ghost", **kwargs)  # type: ignore[arg-type]
    return vmapped, ghosted


def _assert_same(model, inputs, targets, *, clip_norm, loss=functional.cross_entropy, chunk_size=256):
    vmapped, ghosted = _pair(model, chunk_size=chunk_size)
    torch.testing.assert_close(
        ghosted.per_example_norms(inputs, targets, loss),
        vmapped.per_example_norms(inputs, targets, loss),
        rtol=1e-4,
        atol=1e-5,  # float32: the two paths sum in different orders
    )
    want = Privatizer.flatten(vmapped.clipped_sum(inputs, targets, loss, clip_norm=clip_norm))
    got = Privatizer.flatten(ghosted.clipped_sum(inputs, targets, loss, clip_norm=clip_norm))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * clip_norm)
    assert ghosted.method == "ghost"


@pytest.mark.parametrize(("workload", "variant", "shape", "classes"), BUILT_IN)
@pytest.mark.parametrize("budget", [ghost_layers._PER_EXAMPLE_BUDGET, 0])
@pytest.mark.parametrize("slice_elements", [ghost_layers._SLICE_ELEMENTS, 700])
def test_built_in_models_match_the_vmap_path(monkeypatch, workload, variant, shape, classes, budget, slice_elements):
    """Budget 0 forces the ghost-norm (Gram) route wherever it is cheaper than per-example gradients.

    A slice of 700 numbers walks every layer's temporaries in slices of one or a few examples.
    """
    monkeypatch.setattr(ghost_layers, "_PER_EXAMPLE_BUDGET", budget)
    monkeypatch.setattr(ghost_layers, "_SLICE_ELEMENTS", slice_elements)
    torch.manual_seed(0)
    model = resolve_workload(workload).build_model(variant)
    inputs, targets = _data(shape, classes, size=12)
    norms = Privatizer(model, expected_batch_size=1.0, clipping="vmap").per_example_norms(
        inputs, targets, cross_entropy_per_example
    )
    # A clip norm at the median norm: about half the examples are clipped.
    clip_norm = float(norms.median())
    _assert_same(model, inputs, targets, clip_norm=clip_norm, loss=cross_entropy_per_example, chunk_size=5)
    assert Privatizer(model, expected_batch_size=1.0).method == "ghost"  # auto picks it


@settings(max_examples=20, deadline=None)
@given(
    st.data(),
    st.sampled_from([ghost_layers._PER_EXAMPLE_BUDGET, 0]),
    st.floats(0.01, 10.0),
    st.sampled_from([ghost_layers._SLICE_ELEMENTS, 1, 40]),
)
def test_random_mixed_models_match_the_vmap_path(data, budget, clip_norm, slice_elements):
    seed = data.draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    channels, size = data.draw(st.integers(1, 3)), data.draw(st.integers(5, 9))
    # float64: a random model can be ill-conditioned (e.g. LayerNorm over 2 features, whose
    # gradient grows as 1/|x1 − x2|), and there float32 round-off in the two paths' different
    # summation orders exceeded the tolerance (seen: 1.3e-4) while float64 agreed; the
    # comparison is of the algorithms, not of float32's rounding.
    model = _random_model(data, channels, size).double()
    inputs, targets = _data((channels, size, size), 3, size=data.draw(st.integers(1, 7)), seed=seed)
    inputs = inputs.double()
    original = ghost_layers._PER_EXAMPLE_BUDGET, ghost_layers._SLICE_ELEMENTS
    ghost_layers._PER_EXAMPLE_BUDGET, ghost_layers._SLICE_ELEMENTS = budget, slice_elements
    try:
        _assert_same(model, inputs, targets, clip_norm=clip_norm, chunk_size=data.draw(st.integers(1, 8)))
    finally:
        ghost_layers._PER_EXAMPLE_BUDGET, ghost_layers._SLICE_ELEMENTS = original


def _random_model(data: st.DataObject, channels: int, size: int) -> nn.Module:
    """Convolutions (stride, padding, bias drawn), activations, a linear part, norm layers as fallbacks."""
    layers: list[nn.Module] = []
    for _ in range(data.draw(st.integers(0, 2))):
        kernel, stride, padding = (
            data.draw(st.integers(1, 3)),
            data.draw(st.integers(1, 2)),
            data.draw(st.integers(0, 1)),
        )
        if size + 2 * padding < kernel:
            continue
        out = data.draw(st.integers(1, 4))
        layers.append(nn.Conv2d(channels, out, kernel, stride=stride, padding=padding, bias=data.draw(st.booleans())))
        channels, size = out, (size + 2 * padding - kernel) // stride + 1
        layers.append(data.draw(st.sampled_from([nn.Tanh(), nn.ReLU(), nn.Identity()])))
    if channels * size * size > 1 and data.draw(st.booleans()):  # one value per group cannot be normalised
        layers.append(nn.GroupNorm(1, channels))  # has parameters, not a ghost layer: per-layer fallback
    layers.append(nn.Flatten())
    features = channels * size * size
    for _ in range(data.draw(st.integers(1, 2))):
        out = data.draw(st.integers(2, 6))
        layers += [nn.Linear(features, out, bias=data.draw(st.booleans())), nn.Tanh()]
        features = out
        if data.draw(st.booleans()):
            layers.append(nn.LayerNorm(features))
    layers.append(nn.Linear(features, 3))
    model = nn.Sequential(*layers)
    if data.draw(st.booleans()):
        parameters = list(model.parameters())
        parameters[data.draw(st.integers(0, len(parameters) - 1))].requires_grad_(False)
    return model


class _Tokens(nn.Module):
    """Embedding (fallback) → Linear over a sequence (T > 1: ghost Gram or per-example) → mean → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 6)
        self.mix = nn.Linear(6, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.embedding(tokens))).mean(1))


@pytest.mark.parametrize("budget", [ghost_layers._PER_EXAMPLE_BUDGET, 0])
@pytest.mark.parametrize("slice_elements", [ghost_layers._SLICE_ELEMENTS, 7])
def test_sequences_and_embeddings_match(monkeypatch, budget, slice_elements):
    """Budget 0: nothing is kept, so the embedding's per-example gradients are built again for the sum."""
    monkeypatch.setattr(ghost_layers, "_PER_EXAMPLE_BUDGET", budget)
    monkeypatch.setattr(ghost_layers, "_SLICE_ELEMENTS", slice_elements)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 11, (9, 4), generator=generator)
    targets = torch.randint(0, 3, (9,), generator=generator)
    _assert_same(_Tokens(), tokens, targets, clip_norm=0.3)


def test_inplace_activation_after_a_layer(batch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))
    _assert_same(model, *batch(size=8), clip_norm=0.2)


def test_a_loss_that_reduces_over_its_batch_is_still_called_per_example(mlp, batch):
    """Only the workloads' row-wise cross entropy takes one batched call (issue 28); any other loss is
    called one example at a time, as the vmap path calls it. This loss centres the logits over its
    batch: on a batch of one it is constant (every gradient 0), on the whole batch it is not."""

    def centred(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(outputs - outputs.mean(0, keepdim=True), targets, reduction="none")

    inputs, targets = batch(size=8)
    vmapped, ghosted = _pair(mlp(seed=0))
    assert float(ghosted.per_example_norms(inputs, targets, centred).max()) == 0.0
    assert float(vmapped.per_example_norms(inputs, targets, centred).max()) == 0.0
    batched = ghosted.per_example_norms(inputs, targets, lambda o, t: cross_entropy_per_example(o, t))
    assert float(batched.min()) > 0  # the same model and batch: non-zero gradients under a row-wise loss


def test_the_row_wise_loss_sums_as_one_example_at_a_time(batch):
    """The batched shortcut gives the sum the per-example (vmap) route gives, value and gradient."""
    loss = cross_entropy_per_example
    inputs, targets = batch(size=16, features=3)
    outputs = inputs.clone().requires_grad_(True)
    got = summed_loss(loss, outputs, targets)
    (got_grad,) = torch.autograd.grad(got, outputs)
    want = vmap(lambda o, t: loss(o.unsqueeze(0), t.unsqueeze(0)).sum())(outputs, targets).sum()
    (want_grad,) = torch.autograd.grad(want, outputs)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


@pytest.mark.parametrize("clip_norm", [1e-3, 0.5])
def test_sensitivity_on_neighbouring_batches(cnn, clip_norm):
    """Removing any one example moves the clipped sum by at most C (add/remove adjacency)."""
    model = cnn()
    generator = torch.Generator().manual_seed(4)
    inputs = 5 * torch.randn(6, 1, 8, 8, generator=generator)
    targets = torch.randint(0, 4, (6,), generator=generator)
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping="ghost", chunk_size=4)
    full = Privatizer.flatten(privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=clip_norm))
    for k in range(6):
        keep = [i for i in range(6) if i != k]
        neighbour = privatizer.clipped_sum(inputs[keep], targets[keep], functional.cross_entropy, clip_norm=clip_norm)
        distance = (full - Privatizer.flatten(neighbour)).norm().item()
        assert distance <= clip_norm * (1 + 1e-5)
    assert privatizer.method == "ghost"


class _MixesExamples(nn.Module):
    """Subtracts the batch mean: example i's output depends on the others (breaks per-example clipping)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs - inputs.mean(0, keepdim=True))


class _Reused(nn.Module):
    """The same layer applied twice: one parameter, two contributions per example."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(torch.tanh(self.linear(inputs))))


class _Reorders(nn.Module):
    """Reverses the batch around a layer: outputs are per-example, but that layer's row i is another example."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(6, 6)
        self.second = nn.Linear(6, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.first(inputs)).flip(0)
        return self.second(hidden).flip(0)


@pytest.mark.parametrize(
    ("factory", "reason"),
    [
        (_Reorders, "mixes or reorders examples"),
        (_Reused, "called twice"),
    ],
)
def test_auto_falls_back_to_vmap_and_ghost_refuses(batch, factory, reason):
    torch.manual_seed(0)
    model = factory()
    inputs, targets = batch(size=6)
    auto = Privatizer(model, expected_batch_size=1.0)
    vmapped = Privatizer(model, expected_batch_size=1.0, clipping="vmap")
    got = auto.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.1)
    want = vmapped.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.1)
    assert auto.method == "vmap"
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    strict = Privatizer(model, expected_batch_size=1.0, clipping="ghost")
    with pytest.raises(ValueError, match=rf"^clipping='ghost' cannot run this model: .*{reason}") as info:
        strict.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("clipping", ["auto", "ghost", "vmap"])
def test_a_model_that_mixes_examples_is_refused_on_every_path(batch, clipping):
    """No fallback for mixing: the vmap path cannot make it per-example either (one line, nothing summed)."""
    torch.manual_seed(0)
    model = _MixesExamples()
    inputs, targets = batch(size=6)
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping=clipping)
    with pytest.raises(
        BatchMixingError,
        match=r"^model: _MixesExamples.forward \(before its submodule 'linear'\) mixes examples .*GroupNorm",
    ) as info:
        privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=0.1)
    assert "\n" not in str(info.value)


def test_shared_parameters_fall_back_at_construction():
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    model = nn.Sequential(first, nn.Tanh(), second)
    assert Privatizer(model, expected_batch_size=1.0).method == "vmap"
    with pytest.raises(ValueError, match=r"clipping='ghost' cannot run this model: parameter 2.weight is shared"):
        Privatizer(model, expected_batch_size=1.0, clipping="ghost")


def test_hooked_steps_use_per_example_gradients(mlp, batch):
    """DP²'s pre-clip hook needs whole per-example gradients: a ghost privatizer takes the vmap path for it."""
    inputs, targets = batch(size=7)
    vmapped, ghosted = _pair(mlp(), chunk_size=3)

    def precondition(gradients):
        return [g / (0.1 + g.abs().mean()) for g in gradients]

    for clip_norm in (0.05, 5.0):
        want = vmapped.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=clip_norm, hook=precondition)
        got = ghosted.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=clip_norm, hook=precondition)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)


@pytest.mark.parametrize("optimizer", ["dp_sgd", "dp2_rmsprop"])
def test_trainers_agree_and_account_the_same(mlp, batch, optimizer):
    """Same seeds → same parameters after the steps (ghost vs vmap), and the same DpEvent."""
    hyperparameters = {"lr": 0.1, "clip_norm": 0.5} if optimizer == "dp_sgd" else {"delay": 2}
    trainers = []
    for clipping in ("vmap", "ghost", "auto"):
        trainer = make_private(
            mlp(),
            optimizer=optimizer,
            hyperparameters=hyperparameters,
            sampling_rate=0.1,
            dataset_size=50,
            noise_multiplier=1.0,
            steps=6,
            generator=make_generator(seed=3),
            clipping=clipping,
        )
        for step in range(6):
            trainer.step(*batch(size=5, seed=step), functional.cross_entropy)
        trainers.append(trainer)
    reference = trainers[0]
    for trainer in trainers[1:]:
        for p, q in zip(trainer.model.parameters(), reference.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
        assert trainer.dp_event() == reference.dp_event()
    assert isinstance(reference.dp_event(), dp_event.DpEvent)
    assert trainers[1].privatizer.method == trainers[2].privatizer.method == "ghost"


class _PartlyUsed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(6, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.used(inputs)


def test_unused_layer_and_empty_batch(batch):
    torch.manual_seed(0)
    _assert_same(_PartlyUsed(), *batch(size=5), clip_norm=0.1)
    privatizer = Privatizer(_PartlyUsed(), expected_batch_size=1.0, clipping="ghost")
    empty = privatizer.clipped_sum(
        torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), functional.cross_entropy, clip_norm=1
    )
    assert all(torch.count_nonzero(g) == 0 for g in empty)


def test_bad_clipping_refused(mlp):
    with pytest.raises(ValueError, match=r"^Expected clipping='fast' to be one of auto, ghost, vmap$"):
        make_private(
            mlp(),
            optimizer="dp_sgd",
            hyperparameters={},
            sampling_rate=0.1,
            dataset_size=10,
            noise_multiplier=1.0,
            steps=1,
            clipping="fast",
        )


def test_default_chunk_size_follows_the_method(mlp):
    assert Privatizer(mlp(), expected_batch_size=1.0).chunk_size() == 2560
    assert Privatizer(mlp(), expected_batch_size=1.0).chunk_size(hooked=True) == 256
    assert Privatizer(mlp(), expected_batch_size=1.0, clipping="vmap").chunk_size() == 256
    assert Privatizer(mlp(), expected_batch_size=1.0, chunk_size=7).chunk_size() == 7
