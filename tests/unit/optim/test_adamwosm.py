"""DP-AdamWOSM is DP-Adam with √v̂ pinned to its noise limit σC/B (built independently here)."""

from __future__ import annotations

import pytest
import torch

from tunedp.accounting.schedule import NoiseSegment
from tunedp.optim import DpAdam, DpAdamWosm, StepContext


def _gradients(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(3, 2, generator=generator), torch.randn(4, generator=generator)] for _ in range(steps)]


def _params() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(99)
    return [torch.randn(3, 2, generator=generator), torch.randn(4, generator=generator)]


def _context(step: int, sigma: float = 0.8) -> StepContext:
    return StepContext(step=step, noise_multiplier=sigma, clip_norm=1.5, expected_batch_size=12.0)


def _pinned_adam(params, gradients, *, lr, beta1, weight_decay, sigmas):
    """Adam by hand, except v̂ := (σₜC/B)² and eps = 0."""
    params = [p.clone() for p in params]
    first = [torch.zeros_like(p) for p in params]
    for t, (grads, sigma) in enumerate(zip(gradients, sigmas, strict=True), start=1):
        pinned_v_hat = (sigma * 1.5 / 12.0) ** 2
        for i, g in enumerate(grads):
            first[i] = beta1 * first[i] + (1 - beta1) * g
            m_hat = first[i] / (1 - beta1**t)
            params[i] = params[i] * (1 - lr * weight_decay) - lr * m_hat / pinned_v_hat**0.5
    return params


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_equals_adam_with_pinned_second_moment(weight_decay):
    gradients, sigmas = _gradients(7), [0.8, 0.8, 1.1, 1.1, 2.0, 2.0, 2.0]  # a σ schedule is followed
    rule = DpAdamWosm(lr=0.01, beta1=0.85, weight_decay=weight_decay)
    params = _params()
    for step, (grads, sigma) in enumerate(zip(gradients, sigmas, strict=True)):
        rule.update(params, grads, _context(step, sigma))
    want = _pinned_adam(_params(), gradients, lr=0.01, beta1=0.85, weight_decay=weight_decay, sigmas=sigmas)
    for got, expected in zip(params, want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert set(rule.state()) == {"exp_avg"}


def test_cutoff_steps_are_plain_dp_adam():
    gradients = _gradients(5)
    wosm, adam = DpAdamWosm(lr=0.01, cutoff=3), DpAdam(lr=0.01)
    wosm_params, adam_params = _params(), _params()
    for step, grads in enumerate(gradients[:3]):
        wosm.update(wosm_params, grads, _context(step))
        adam.update(adam_params, grads, _context(step))
    for a, b in zip(wosm_params, adam_params, strict=True):
        torch.testing.assert_close(a, b)
    # After the cutoff: momentum carries on, the limit replaces v.
    before = [p.clone() for p in wosm_params]
    momentum = [m.clone() for m in wosm.state()["exp_avg"]]
    wosm.update(wosm_params, gradients[3], _context(3))
    for p, p0, m0, g in zip(wosm_params, before, momentum, gradients[3], strict=True):
        m_hat = (0.9 * m0 + 0.1 * g) / (1 - 0.9**4)
        torch.testing.assert_close(p, p0 - 0.01 * m_hat / (0.8 * 1.5 / 12.0))


def test_zero_noise_is_refused_where_the_limit_is_used():
    rule = DpAdamWosm(cutoff=2)
    params = _params()
    rule.update(params, _gradients(1)[0], _context(0, sigma=0.0))  # DP-Adam step: fine
    with pytest.raises(ValueError, match=r"dp_adamwosm needs noise_multiplier > 0 \(got 0.0 at step 2\)"):
        rule.update(params, _gradients(1)[0], _context(2, sigma=0.0))
    with pytest.raises(ValueError, match="at step 2"):
        rule.check_segments([NoiseSegment(noise_multiplier=1.0, steps=2), NoiseSegment(noise_multiplier=0.0, steps=3)])
    rule.check_segments([NoiseSegment(noise_multiplier=0.0, steps=2), NoiseSegment(noise_multiplier=1.0, steps=3)])
