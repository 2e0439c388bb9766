"""Gaussian noise for the privatized gradient, and where its randomness comes from.

``make_generator(secure=True)`` seeds a fresh ``torch.Generator`` from the
operating system's entropy (``secrets``), so no observer can reproduce the
noise from a known seed; ``make_generator(seed=...)`` is for reproducible
tests. Limitation, stated honestly: torch's generator is a Mersenne Twister,
*not* a cryptographically secure PRNG, and floating-point Gaussian sampling
has known side channels; a CSPRNG-backed discrete or rounded Gaussian would be
needed for a cryptographic guarantee. This module never clips or accounts.
"""

from __future__ import annotations

import secrets

import torch
from torch import Tensor

__all__ = ["gaussian_noise_like", "make_generator"]


def make_generator(
    *, secure: bool = False, seed: int | None = None, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator for the noise: OS-entropy seeded when ``secure``, else seeded with ``seed``.

    ``secure=True`` with a ``seed`` is refused: a known seed defeats the point.
    With neither, the seed also comes from the OS (a fresh, unpredictable stream).
    """
    if secure and seed is not None:
        raise ValueError("secure=True takes no seed: a known seed makes the noise reproducible")
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63) if seed is None else seed)
    return generator


def gaussian_noise_like(tensor: Tensor, std: float, generator: torch.Generator | None) -> Tensor:
    """N(0, std²) noise of ``tensor``'s shape, dtype and device, drawn from ``generator``.

    Drawn in the tensor's logical order, not its memory order: a channels-last
    weight (:mod:`tunedp.workloads.layout`) gets the same noise, coordinate by
    coordinate, as the same weight stored contiguously, so a seed names one
    draw whatever the model's layout.
    """
    if not std >= 0:
        raise ValueError(f"Expected std={std} >= 0")
    noise = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)
    if std == 0:
        return noise.zero_()
    return noise.normal_(mean=0.0, std=std, generator=generator)
