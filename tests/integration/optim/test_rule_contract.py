"""The contract every update rule passes (one class, parametrised over UPDATE_RULES)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dp_accounting.rdp import RdpAccountant
from torch.nn import functional

from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.trial_event import steps_event
from tunedp.optim import UPDATE_RULES, UpdateRule, build_update_rule, make_generator, make_private

# Small, stable settings per rule (DP² with a short delay so both phases run).
SETTINGS: dict[str, dict[str, float]] = {
    "dp_sgd": {"lr": 0.1, "momentum": 0.5},
    "dp_adam": {"lr": 0.01},
    "dp_adamwosm": {"lr": 0.01, "cutoff": 1},
    "dp2_rmsprop": {"lr": 0.1, "delay": 2, "lr_2": 0.01},
}
SEGMENTS = (NoiseSegment(noise_multiplier=1.0, steps=3), NoiseSegment(noise_multiplier=2.0, steps=4))
RATE, SIZE = 0.2, 40


def test_every_rule_has_settings():
    assert set(SETTINGS) == set(UPDATE_RULES) == {"dp_sgd", "dp_adam", "dp_adamwosm", "dp2_rmsprop"}


def _epsilon(event) -> float:
    return RdpAccountant().compose(event).get_epsilon(1e-5)


@pytest.mark.parametrize("name", UPDATE_RULES)
class TestUpdateRuleContract:
    def _trainer(self, model, name, seed=0):
        return make_private(
            model,
            optimizer=name,
            hyperparameters=SETTINGS[name],
            sampling_rate=RATE,
            dataset_size=SIZE,
            segments=SEGMENTS,
            generator=make_generator(seed=seed),
        )

    def _run(self, trainer, batch, steps):
        for step in range(steps):
            inputs, targets = batch(size=step % 3 * 4, seed=step)  # sizes 0, 4, 8: empty batches included
            trainer.step(inputs, targets, functional.cross_entropy)

    def test_builds_with_defaults_and_is_an_update_rule(self, name):
        rule = build_update_rule(name, {})
        assert isinstance(rule, UpdateRule)
        assert rule.name == name
        assert rule.clipping(0).clip_norm == rule.defaults()["clip_norm"]

    def test_state_is_parameter_shaped(self, name, mlp, batch):
        model = mlp()
        trainer = self._trainer(model, name)
        assert trainer.rule.state() == {}
        self._run(trainer, batch, 5)
        shapes = [p.shape for p in model.parameters()]
        for kind, tensors in trainer.rule.state().items():
            assert [t.shape for t in tensors] == shapes, kind

    def test_deterministic_with_a_fixed_generator(self, name, mlp, batch):
        models = [mlp(), mlp()]
        for model in models:
            self._run(self._trainer(model, name, seed=7), batch, 5)
        for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
            assert torch.equal(a, b)
        other = mlp()
        self._run(self._trainer(other, name, seed=8), batch, 5)
        assert not torch.equal(other[0].weight, models[0][0].weight)

    def test_changes_the_model_in_place(self, name, mlp, batch):
        model = mlp()
        before = [p.detach().clone() for p in model.parameters()]
        self._run(self._trainer(model, name), batch, 3)
        assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            ("lr", -1.0, r"^Expected lr=-1.0 > 0$"),
            ("lr", float("inf"), r"^Expected lr=inf to be finite$"),
            ("clip_norm", 0.0, r"^Expected clip_norm=0.0 > 0$"),
            ("clip_norm", True, r"^Expected clip_norm=True to be a number$"),
            ("not_a_key", 1.0, r"does not take hyperparameter 'not_a_key'; allowed: lr, clip_norm"),
        ],
    )
    def test_refuses_bad_hyperparameters(self, name, key, value, message):
        with pytest.raises(ValueError, match=message) as info:
            build_update_rule(name, {key: value})
        assert "\n" not in str(info.value)

    @pytest.mark.parametrize("taken", [0, 2, 5, 7])
    def test_dp_event_is_the_event_of_the_steps_taken(self, name, mlp, batch, taken):
        trainer = self._trainer(mlp(), name)
        self._run(trainer, batch, taken)
        assert trainer.steps_taken == taken
        remaining, prefix = taken, []
        for segment in SEGMENTS:
            count = min(segment.steps, remaining)
            if count:
                prefix.append(NoiseSegment(noise_multiplier=segment.noise_multiplier, steps=count))
            remaining -= count
        want = steps_event(RATE, tuple(prefix))
        assert trainer.dp_event() == want
        if taken:
            assert _epsilon(trainer.dp_event()) == pytest.approx(_epsilon(want))
            assert _epsilon(trainer.dp_event()) > 0

    def test_refuses_steps_past_the_plan(self, name, mlp, batch):
        trainer = self._trainer(mlp(), name)
        self._run(trainer, batch, 7)
        with pytest.raises(RuntimeError, match="all 7 planned steps are taken"):
            trainer.step(*batch(size=2), functional.cross_entropy)
        assert trainer.steps_taken == 7

    def test_the_lr_schedule_scales_every_learning_rate_in_every_phase(self, name, mlp, batch):
        """A schedule factor of ½ at every step trains exactly as halving each learning rate.

        ½ is exact in binary, so the two runs agree bit for bit through every phase
        (DP-Adam warm-up of AdamWOSM, both phases of DP²).
        """
        halved = {k: v / 2 if k in {"lr", "lr_2"} else v for k, v in SETTINGS[name].items()}
        scheduled, reference = mlp(), mlp()
        trainer = self._trainer(scheduled, name, seed=3)
        trainer.lr_schedule = _Half()
        self._run(trainer, batch, 7)
        plain = make_private(
            reference,
            optimizer=name,
            hyperparameters=halved,
            sampling_rate=RATE,
            dataset_size=SIZE,
            segments=SEGMENTS,
            generator=make_generator(seed=3),
        )
        self._run(plain, batch, 7)
        for a, b in zip(scheduled.parameters(), reference.parameters(), strict=True):
            assert torch.equal(a, b)
        unscheduled = mlp()
        self._run(self._trainer(unscheduled, name, seed=3), batch, 7)
        assert not torch.equal(unscheduled[0].weight, scheduled[0].weight)


class _Half:
    """A schedule shape whose factor is ½ at every step."""

    def factor(self, step: int, steps: int) -> float:
        del step, steps
        return 0.5


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("dp_sgd", "momentum", 1.0, r"^Expected momentum=1.0 in \[0, 1\)$"),
        ("dp_sgd", "weight_decay", -0.1, r"^Expected weight_decay=-0.1 >= 0$"),
        ("dp_adam", "beta2", 1.5, r"^Expected beta2=1.5 in \[0, 1\)$"),
        ("dp_adam", "eps", 0.0, r"^Expected eps=0.0 > 0$"),
        ("dp_adam", "cutoff", 3.0, r"^dp_adam does not take hyperparameter 'cutoff'"),
        ("dp_adamwosm", "cutoff", 2.5, r"^Expected cutoff=2.5 to be an integer >= 0$"),
        ("dp2_rmsprop", "delay", 0.0, r"^Expected delay=0.0 to be an integer >= 1$"),
        ("dp2_rmsprop", "gamma", -0.5, r"^Expected gamma=-0.5 in \[0, 1\)$"),
        ("dp2_rmsprop", "clip_norm_2", 0.0, r"^Expected clip_norm_2=0.0 > 0$"),
        ("dp2_rmsprop", "lr_2", -1.0, r"^Expected lr_2=-1.0 > 0$"),
    ],
)
def test_rule_specific_ranges(name, key, value, message):
    with pytest.raises(ValueError, match=message):
        build_update_rule(name, {key: value})


def test_integer_hyperparameters_accept_integral_floats():
    rule = build_update_rule("dp2_rmsprop", {"delay": 4.0, "clip_norm_2": 3.0})
    assert [rule.clipping(s).clip_norm for s in (3, 4, 7, 8)] == [1.0, 3.0, 3.0, 1.0]


def test_numpy_scalars_are_numbers():
    rule = build_update_rule("dp2_rmsprop", {"delay": np.int64(3), "lr": np.float32(0.5)})
    assert rule.clipping(3).hook is not None


def test_unknown_optimizer_refused():
    with pytest.raises(ValueError, match=r"^Unknown optimizer='sgd'; expected one of dp_sgd, dp_adam"):
        build_update_rule("sgd", {})
