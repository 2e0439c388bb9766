"""Models that mix examples in training mode: refused on both clipping paths, or sensitivity ≤ C, measured.

Per-example clipping bounds what one example adds to the summed gradient by
C only if example i's gradient depends on example i alone. A module that
centres over the batch, normalises by batch statistics or keeps running
statistics breaks that in *training* mode (eval mode can look innocent). The
hypothesis test draws such modules, paths, batches and clip norms, and
removes each example in turn: the clipped sum may move by at most C, unless
the model was refused (one line, before anything was summed, the model left
as it was). The same probe must accept the ordinary per-example modules,
dropout included (its randomness is not mixing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from search_helpers import example_dict
from torch import nn
from torch.nn import functional

from tunedp.cli import main
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.optim import Privatizer, make_private
from tunedp.optim.independence import BatchMixingError, check_batch_independence
from tunedp.optim.per_sample import per_example_gradients
from tunedp.workloads import digits

FEATURES, HIDDEN, CLASSES = 6, 8, 3


class _Net(nn.Module):
    """Linear → (the module under test) → tanh → Linear: the ghost path's layers around a custom one."""

    def __init__(self, middle: nn.Module) -> None:
        super().__init__()
        self.first = nn.Linear(FEATURES, HIDDEN)
        self.middle = middle
        self.second = nn.Linear(HIDDEN, CLASSES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.middle(self.first(inputs))))


class TrainingCentre(nn.Module):
    """Hand-written centring over the batch, in training mode only (eval mode is per-example)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True) if self.training else x


class FunctionalBatchNorm(nn.Module):
    """``F.batch_norm(..., training=self.training)`` with its own running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(HIDDEN))
        self.register_buffer("running_var", torch.ones(HIDDEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.batch_norm(x, self.running_mean, self.running_var, training=self.training)


class BatchStatistics(nn.Module):
    """``F.batch_norm`` on the batch's statistics only: no buffers, mixing in every mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.batch_norm(x, None, None, training=True)


class RunningStatistics(nn.Module):
    """A running mean updated in forward (in place) and subtracted: mixes through the buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running", torch.zeros(HIDDEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.running.mul_(0.5).add_(0.5 * x.mean(0))
        return x - self.running


class StatisticsForEval(nn.Module):
    """Training output per-example, but a running mean of the data is kept (replaced, not written) for eval."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(HIDDEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.mean = 0.9 * self.mean + 0.1 * x.detach().mean(0)
            return x
        return x - self.mean


class HiddenStatistics(nn.Module):
    """Statistics of the data in a plain attribute (not a buffer): only behaviour can show them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen = x.detach().mean(0)
            return x
        return x if self.seen is None else x - self.seen


class BatchSize(nn.Module):
    """Scales by the batch's size in training mode: example i's output depends on how many others came."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.shape[0] ** 0.5 if self.training else x


class CentreAfterDropout(nn.Module):
    """Dropout, then centring: random *and* mixing (the randomness must not hide the mixing)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        return x - x.mean(0, keepdim=True)


MIXING: dict[str, Callable[[], nn.Module]] = {
    "hand-written centring": TrainingCentre,
    "functional batch_norm": FunctionalBatchNorm,
    "batch statistics only": BatchStatistics,
    "running statistics updated in forward": RunningStatistics,
    "statistics kept for eval": StatisticsForEval,
    "statistics in a plain attribute": HiddenStatistics,
    "batch size": BatchSize,
    "centring after dropout": CentreAfterDropout,
}


def _batch(size: int, seed: int, outlier: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = 3 * torch.randn(size, FEATURES, generator=generator)
    inputs[0] *= outlier  # an adversary's example, far from the rest
    return inputs, torch.randint(0, CLASSES, (size,), generator=generator)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        assert torch.equal(after[name], value), f"{name} changed: the probe or the step leaked into the model"


def _largest_move(privatizer: Privatizer, inputs: torch.Tensor, targets: torch.Tensor, clip_norm: float) -> float:
    """max over k of ‖S(D) − S(D without example k)‖ for the clipped sum S."""
    loss = functional.cross_entropy
    full = Privatizer.flatten(privatizer.clipped_sum(inputs, targets, loss, clip_norm=clip_norm))
    moves = []
    for k in range(inputs.shape[0]):
        keep = [i for i in range(inputs.shape[0]) if i != k]
        neighbour = Privatizer.flatten(privatizer.clipped_sum(inputs[keep], targets[keep], loss, clip_norm=clip_norm))
        moves.append(float((full - neighbour).norm()))
    return max(moves)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MIXING)),
    clipping=st.sampled_from(["ghost", "vmap", "auto"]),
    size=st.integers(2, 9),
    seed=st.integers(0, 2**16),
    clip_norm=st.sampled_from([1e-3, 0.05, 1.0]),
    outlier=st.sampled_from([1.0, 30.0]),
)
@example(name="batch statistics only", clipping="ghost", size=2, seed=0, clip_norm=1e-3, outlier=30.0)  # found
def test_mixing_models_are_refused_or_have_sensitivity_at_most_c(name, clipping, size, seed, clip_norm, outlier):
    torch.manual_seed(seed)
    model = _Net(MIXING[name]())
    before = _snapshot(model)
    inputs, targets = _batch(size, seed, outlier)
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping=clipping)
    try:
        move = _largest_move(privatizer, inputs, targets, clip_norm)
    except BatchMixingError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("model: ")
        assert "GroupNorm" in message  # the fix
        _assert_unchanged(model, before)  # refused before anything was summed; the probe left no trace
        assert model.training
        return
    assert move <= clip_norm * (1 + 1e-5), f"{name} on {privatizer.method}: sensitivity {move / clip_norm:.2f}·C"
    _assert_unchanged(model, before)  # no statistic of the data reached the model


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("hand-written centring", ["module 'middle' (TrainingCentre) mixes examples in training mode"]),
        ("functional batch_norm", ["writes 'running_mean', 'running_var' of module 'middle' (FunctionalBatchNorm)"]),
        ("batch statistics only", ["module 'middle' (BatchStatistics) mixes examples"]),
        ("running statistics updated in forward", ["writes 'running' of module 'middle' (RunningStatistics)"]),
        ("statistics kept for eval", ["writes 'mean' of module 'middle' (StatisticsForEval)"]),
        ("statistics in a plain attribute", ["changes its later eval-mode output"]),
        ("batch size", ["module 'middle' (BatchSize)", "depend on its batch"]),
        ("centring after dropout", ["module 'middle' (CentreAfterDropout) mixes examples"]),
    ],
)
@pytest.mark.parametrize("clipping", ["ghost", "vmap", "auto"])
def test_each_mixing_module_is_refused_by_name_on_every_path(name, words, clipping):
    torch.manual_seed(0)
    model = _Net(MIXING[name]())
    model.middle.eval()  # a mode the model would not train in: the probe trains it, then puts this back
    before = _snapshot(model)
    rng = torch.get_rng_state()
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping=clipping)
    with pytest.raises(BatchMixingError) as info:
        privatizer.clipped_sum(*_batch(5, 0, 1.0), functional.cross_entropy, clip_norm=0.1)
    for word in words:
        assert word in str(info.value), str(info.value)
    if name != "statistics in a plain attribute":  # state outside buffers cannot be put back; it is refused
        _assert_unchanged(model, before)
    assert model.training and not model.middle.training
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("clipping", ["ghost", "vmap", "auto"])
def test_batch_statistics_that_two_examples_hide_are_refused_on_one_example(clipping):
    """With two examples ``F.batch_norm`` maps each to about ±1 whatever the other is, so replacing one moves
    nothing the probe can see; the forward on one example alone then raises. That is a refusal, in one line."""
    torch.manual_seed(0)
    model = _Net(BatchStatistics())
    before = _snapshot(model)
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping=clipping)
    with pytest.raises(BatchMixingError) as info:
        privatizer.clipped_sum(*_batch(2, 0, 30.0), functional.cross_entropy, clip_norm=1e-3)
    message = str(info.value)
    assert message.startswith("model: its training forward fails on one example alone (ValueError: Expected more")
    assert "GroupNorm" in message and "\n" not in message
    _assert_unchanged(model, before)
    assert model.training


def test_the_old_eval_mode_check_is_not_enough():
    """What the issue saw: most of these are per-example in eval mode, so the old check there passed them."""
    inputs, _ = _batch(4, 0, 1.0)
    passed_in_eval = []
    for name, factory in MIXING.items():
        torch.manual_seed(0)
        model = _Net(factory()).eval()
        with torch.no_grad():
            together = model(inputs)
            try:
                alone = torch.cat([model(inputs[i : i + 1]) for i in range(4)])
            except ValueError:  # batch statistics of one example: F.batch_norm refuses
                continue
        if torch.allclose(together, alone, atol=1e-6):
            passed_in_eval.append(name)
    assert sorted(passed_in_eval) == sorted(set(MIXING) - {"batch statistics only", "centring after dropout"})


# ---------------------------------------------------------------------------- no false refusals


class FunctionalDropout(nn.Module):
    """Dropout written by hand (``F.dropout``): random in training mode without an ``nn.Dropout`` module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.dropout(x, 0.5, training=self.training)


class ConstantBuffer(nn.Module):
    """A buffer the forward reads and never writes (a fixed scale): not a statistic of the data."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.linspace(0.5, 1.5, HIDDEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


PER_EXAMPLE: dict[str, Callable[[], nn.Module]] = {
    "identity": nn.Identity,
    "linear": lambda: nn.Linear(HIDDEN, HIDDEN),
    "layer norm": lambda: nn.LayerNorm(HIDDEN),
    "group norm": lambda: nn.GroupNorm(2, HIDDEN),
    "constant buffer": ConstantBuffer,
    "dropout": lambda: nn.Dropout(0.5),
    "hand-written dropout": FunctionalDropout,
    "alpha dropout": lambda: nn.AlphaDropout(0.2),
}
RANDOM = {"dropout", "hand-written dropout", "alpha dropout"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PER_EXAMPLE)),
    clipping=st.sampled_from(["ghost", "vmap", "auto"]),
    size=st.integers(2, 9),
    seed=st.integers(0, 2**16),
    clip_norm=st.sampled_from([1e-3, 0.05, 1.0]),
)
def test_per_example_models_are_accepted(name, clipping, size, seed, clip_norm):
    torch.manual_seed(seed)
    model = _Net(PER_EXAMPLE[name]())
    before = _snapshot(model)
    inputs, targets = _batch(size, seed, 1.0)
    privatizer = Privatizer(model, expected_batch_size=1.0, clipping=clipping)
    if name in RANDOM:
        # A random forward gives another sum for every batch, so its distance between neighbours is no
        # sensitivity; what matters here is that its randomness is not taken for mixing.
        rng = torch.get_rng_state()
        assert check_batch_independence(model, inputs) is not None
        assert torch.equal(torch.get_rng_state(), rng)  # the probe draws under a forked RNG
        privatizer.clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=clip_norm)
    else:
        assert _largest_move(privatizer, inputs, targets, clip_norm) <= clip_norm * (1 + 1e-5)
    assert privatizer.method == ("vmap" if clipping == "vmap" else "ghost")
    _assert_unchanged(model, before)


def test_a_frozen_batchnorm_free_backbone_in_eval_mode_keeps_its_mode(batch):
    """The probe runs the model in training mode and then restores every module's own mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.5), nn.Tanh(), nn.Linear(5, 3))
    model[1].eval()
    inputs, targets = batch(size=6)
    Privatizer(model, expected_batch_size=1.0).clipped_sum(inputs, targets, functional.cross_entropy, clip_norm=1.0)
    assert [m.training for m in model] == [True, False, True, True]


def test_per_example_gradients_refuse_mixing_too():
    torch.manual_seed(0)
    with pytest.raises(BatchMixingError, match="mixes examples"):
        per_example_gradients(_Net(TrainingCentre()), *_batch(4, 0, 1.0), functional.cross_entropy)


def test_a_batch_of_one_checks_nothing_and_the_next_batch_does():
    """One example cannot show mixing; the first batch of two or more is probed before it is summed."""
    torch.manual_seed(0)
    trainer = make_private(
        _Net(TrainingCentre()),
        optimizer="dp_sgd",
        hyperparameters={"lr": 0.1, "clip_norm": 1.0},
        sampling_rate=0.5,
        dataset_size=10,
        noise_multiplier=1.0,
        steps=3,
        secure=True,
    )
    inputs, targets = _batch(4, 0, 1.0)
    trainer.step(inputs[:1], targets[:1], functional.cross_entropy)
    with pytest.raises(BatchMixingError):
        trainer.step(inputs, targets, functional.cross_entropy)
    assert trainer.steps_taken == 1


# ---------------------------------------------------------------------------- refused before the charge


def build_centring_model(variant: str) -> nn.Module:
    """The digits MLP with a centring step in training mode, for the search below."""
    del variant
    return nn.Sequential(nn.Flatten(), nn.Linear(64, HIDDEN), TrainingCentre(), nn.Tanh(), nn.Linear(HIDDEN, 10))


CENTRING_DIGITS = dataclasses.replace(
    digits.WORKLOAD,
    name="digits_centring",
    sizes=dataclasses.replace(digits.WORKLOAD.sizes, dataset="digits_centring"),
    variants=("mlp",),
    model_factory=build_centring_model,
)
"""Digits with a model that centres over the batch in training mode (import path below)."""


def test_search_with_a_mixing_model_is_refused_before_the_charge(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = example_dict()
    data["workload"] = f"{__name__}:CENTRING_DIGITS"
    data["model"] = "mlp"
    data["budget"] = {"epsilon": 4.0, "delta": 1e-5}
    data["training"] = {"steps": 10, "expected_batch_size": 120, "evaluations": 1}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    ledger = tmp_path / "ledger.sqlite"
    PrivacyLedger.create(ledger, dataset="digits_centring", epsilon=10.0, delta=1e-5)
    before = ledger.read_bytes()
    with pytest.raises(SystemExit) as exited:
        main(["search", "--config", str(config), "--ledger", str(ledger), "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert exited.value.code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error: model:"), captured.err
    assert "module '2' (TrainingCentre) mixes examples in training mode" in lines[0]
    assert "GroupNorm" in lines[0]  # the fix survives the one-line limit
    assert ledger.read_bytes() == before  # nothing charged
    assert not (tmp_path / "out").exists()
