"""DP²-RMSProp: exact phase alternation, per-phase clip norm and rate, v from privatized grads."""

from __future__ import annotations

import torch
from torch.nn import functional

from tunedp.optim import Dp2RmsProp, StepContext, make_generator, make_private


def _context(step: int) -> StepContext:
    return StepContext(step=step, noise_multiplier=1.0, clip_norm=1.0, expected_batch_size=4.0)


def test_phases_alternate_every_delay_steps():
    rule = Dp2RmsProp(delay=3, clip_norm=0.5, clip_norm_2=2.5)
    plan = [(rule.clipping(step).clip_norm, rule.clipping(step).hook is not None) for step in range(13)]
    sgd, pre = (0.5, False), (2.5, True)
    assert plan == [sgd] * 3 + [pre] * 3 + [sgd] * 3 + [pre] * 3 + [sgd]


def test_each_phase_steps_with_its_own_rate_and_updates_v_at_phase_end():
    rule = Dp2RmsProp(delay=2, lr=0.1, lr_2=0.7, gamma=0.6)
    params = [torch.zeros(3)]
    grads = [[torch.tensor([1.0, 2.0, 3.0]) * (k + 1)] for k in range(6)]
    rule.update(params, grads[0], _context(0))
    torch.testing.assert_close(params[0], -0.1 * grads[0][0])
    assert torch.count_nonzero(rule.state()["preconditioner"][0]) == 0  # not before the phase ends
    rule.update(params, grads[1], _context(1))
    mean = (grads[0][0] + grads[1][0]) / 2
    torch.testing.assert_close(rule.state()["preconditioner"][0], 0.4 * mean**2)
    before = params[0].clone()
    rule.update(params, grads[2], _context(2))  # preconditioned phase: lr_2, v unchanged
    torch.testing.assert_close(params[0], before - 0.7 * grads[2][0])
    rule.update(params, grads[3], _context(3))
    torch.testing.assert_close(rule.state()["preconditioner"][0], 0.4 * mean**2)
    rule.update(params, grads[4], _context(4))
    rule.update(params, grads[5], _context(5))
    second = (grads[4][0] + grads[5][0]) / 2
    torch.testing.assert_close(rule.state()["preconditioner"][0], 0.6 * 0.4 * mean**2 + 0.4 * second**2)


def test_hook_divides_each_example_by_the_preconditioner():
    rule = Dp2RmsProp(delay=1, gamma=0.0, eps=0.5)
    rule.update([torch.zeros(2)], [torch.tensor([2.0, 3.0])], _context(0))  # v = (2², 3²)
    hook = rule.clipping(1).hook
    assert hook is not None
    (out,) = hook([torch.tensor([[5.0, 7.0], [1.0, 1.0]])])
    torch.testing.assert_close(out, torch.tensor([[5.0 / 2.5, 7.0 / 3.5], [1.0 / 2.5, 1.0 / 3.5]]))


def test_preconditioner_is_built_only_from_privatized_gradients(mlp, batch):
    """Record what the privatizer hands the rule; v must be exactly γ-averaged squares of those."""
    model = mlp()
    trainer = make_private(
        model,
        optimizer="dp2_rmsprop",
        hyperparameters={
            "delay": 2,
            "gamma": 0.5,
            "lr": 0.05,
            "lr_2": 0.01,
            "clip_norm": 0.5,
            "clip_norm_2": 2.0,
        },
        sampling_rate=0.2,
        dataset_size=40,
        noise_multiplier=1.0,
        steps=6,
        generator=make_generator(seed=0),
    )
    received, noise_stds = [], []
    original_privatize = trainer.privatizer.privatize

    def spy(*args, **kwargs):
        out = original_privatize(*args, **kwargs)
        received.append([g.clone() for g in out])
        noise_stds.append(kwargs["clip_norm"] * kwargs["noise_multiplier"])
        return out

    trainer.privatizer.privatize = spy
    for step in range(6):
        inputs, targets = batch(size=8, seed=step)
        trainer.step(inputs, targets, functional.cross_entropy)
    assert noise_stds == [0.5, 0.5, 2.0, 2.0, 0.5, 0.5]  # σ·C of whichever phase
    v = [torch.zeros_like(p) for p in model.parameters()]
    for phase in ((0, 1), (4, 5)):
        for i in range(len(v)):
            mean = (received[phase[0]][i] + received[phase[1]][i]) / 2
            v[i] = 0.5 * v[i] + 0.5 * mean**2
    for got, want in zip(trainer.rule.state()["preconditioner"], v, strict=True):
        torch.testing.assert_close(got, want)
