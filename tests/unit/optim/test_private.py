"""make_private: the noise plan is read from the segments, inputs are validated, the plan is enforced."""

from __future__ import annotations

import pytest
import torch
from dp_accounting import dp_event
from torch import nn
from torch.nn import functional

from tunedp.accounting.schedule import LinearSchedule, NoiseSegment, noise_segments
from tunedp.optim import make_generator, make_private

BASE = {"optimizer": "dp_sgd", "hyperparameters": {"lr": 0.1}, "sampling_rate": 0.1, "dataset_size": 50}


def test_sigma_t_comes_from_the_segments(mlp, batch):
    segments = noise_segments(
        LinearSchedule(start=2.0, end=0.5), base_noise_multiplier=1.0, total_steps=6, segment_steps=2
    )
    trainer = make_private(mlp(), **BASE, segments=segments, generator=make_generator(seed=0))
    seen = []
    original = trainer.privatizer.privatize

    def spy(*args, **kwargs):
        seen.append(kwargs["noise_multiplier"])
        return original(*args, **kwargs)

    trainer.privatizer.privatize = spy
    for step in range(6):
        trainer.step(*batch(size=3, seed=step), functional.cross_entropy)
    assert seen == [2.0, 2.0, 1.25, 1.25, 0.5, 0.5]
    assert trainer.planned_steps == 6
    assert trainer.expected_batch_size == pytest.approx(5.0)


def test_constant_noise_multiplier_with_steps(mlp):
    trainer = make_private(mlp(), **BASE, noise_multiplier=1.5, steps=4)
    assert trainer.segments == (NoiseSegment(noise_multiplier=1.5, steps=4),)
    assert trainer.dp_event() == dp_event.NoOpDpEvent()


def test_empty_batch_is_a_step(mlp):
    model = mlp()
    before = model[0].weight.detach().clone()
    trainer = make_private(model, **BASE, noise_multiplier=1.0, steps=1, generator=make_generator(seed=0))
    trainer.step(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), functional.cross_entropy)
    assert trainer.steps_taken == 1
    assert not torch.equal(before, model[0].weight)  # pure noise / qN moved it


def test_secure_noise_is_not_reproducible(mlp, batch):
    results = []
    for _ in range(2):
        model = mlp()
        trainer = make_private(model, **BASE, noise_multiplier=1.0, steps=1, secure=True)
        trainer.step(*batch(size=3), functional.cross_entropy)
        results.append(model[0].weight.detach())
    assert not torch.equal(*results)
    with pytest.raises(ValueError, match="secure=True takes no generator"):
        make_private(mlp(), **BASE, noise_multiplier=1.0, steps=1, secure=True, generator=make_generator(seed=1))


def test_batchnorm_model_refused():
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm \(1\): it mixes examples.*GroupNorm or LayerNorm"):
        make_private(model, **BASE, noise_multiplier=1.0, steps=1)


def test_adamwosm_without_noise_refused_up_front(mlp):
    with pytest.raises(ValueError, match="dp_adamwosm needs noise_multiplier > 0"):
        make_private(
            mlp(),
            **{**BASE, "optimizer": "dp_adamwosm", "hyperparameters": {}},
            noise_multiplier=0.0,
            steps=3,
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampling_rate": 0.0}, r"^Expected sampling_rate=0.0 in \(0, 1\]$"),
        ({"sampling_rate": 1.5}, r"^Expected sampling_rate=1.5 in \(0, 1\]$"),
        ({"dataset_size": 0}, r"^Expected dataset_size=0 to be an integer >= 1$"),
        ({"steps": 0}, r"^Expected steps=0 to be an integer >= 1$"),
        ({"noise_multiplier": -1.0}, r"^Expected segments\[0\].noise_multiplier=-1.0 >= 0$"),
        ({"steps": None}, r"^Give either segments, or noise_multiplier together with steps$"),
        (
            {"segments": (NoiseSegment(noise_multiplier=1.0, steps=2),)},
            r"^Give either segments, .* not both$",
        ),
        ({"chunk_size": 0}, r"^Expected chunk_size=0 to be an integer >= 1$"),
        ({"optimizer": "adam"}, r"^Unknown optimizer='adam'"),
    ],
)
def test_bad_arguments_refused(mlp, changes, message):
    arguments = {**BASE, "noise_multiplier": 1.0, "steps": 3, **changes}
    with pytest.raises(ValueError, match=message):
        make_private(mlp(), **arguments)


def test_empty_or_bad_segments_refused(mlp):
    with pytest.raises(ValueError, match="at least one NoiseSegment"):
        make_private(mlp(), **BASE, segments=())
    with pytest.raises(ValueError, match=r"^Expected segments\[1\].steps=0 to be an integer >= 1$"):
        make_private(
            mlp(),
            **BASE,
            segments=(
                NoiseSegment(noise_multiplier=1.0, steps=2),
                NoiseSegment(noise_multiplier=1.0, steps=0),
            ),
        )


def test_noise_is_secure_by_default_even_after_seeding_torch(mlp, batch):
    """Issue 10 §3: without an explicit generator, a known torch seed does not fix the noise."""
    results = []
    for _ in range(2):
        torch.manual_seed(0)  # the same initialisation, the same global RNG state: only the noise may differ
        model = mlp()
        trainer = make_private(model, **BASE, noise_multiplier=1.0, steps=1)
        trainer.step(*batch(size=3), functional.cross_entropy)
        results.append(model[0].weight.detach())
    assert not torch.equal(*results)
