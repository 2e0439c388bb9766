"""The 2-D Morlet scattering transform (Bruna & Mallat 2013), second order, in plain torch.

Why it is here: Tramèr & Boneh ("Differentially private learning needs better
features (or much more data)", ICLR 2021) show that a linear model on
scattering features beats end-to-end CNNs under DP-SGD at small ε. The
transform is a *fixed* function of one image — Morlet wavelets, moduli and a
Gaussian low-pass, no learned or data-derived parameter — so applying it to
the private images costs no privacy: on neighbouring datasets it is the same
per-example map, and DP-SGD then trains on its outputs.

Why not ``kymatio``: kymatio 0.3.0 (the release that matches the paper's
code) imports ``scipy.special.sph_harm`` at ``import kymatio.torch``, which
scipy 1.17 removed, and it spends ~12 ms per 28×28 image on this machine. This
module computes the same transform (the same filter definitions and the same
padding/subsampling conventions; ``tests/integration/workloads/test_scattering.py`` compares
it with kymatio's 2-D frontend, a dev dependency) batched in the
Fourier domain.

Definitions (for J scales and L orientations, images of M×N pixels):

* Morlet wavelet ψ_{j,θ}: a Gabor filter of width σ = 0.8·2^j, centre
  frequency ξ = (3π/4)·2^−j, orientation θ and slant 4/L (elongated across
  its oscillation), minus a multiple of the Gaussian envelope that gives it
  zero mean; periodised on the padded grid.
* low-pass φ_J: the Gaussian of width 0.8·2^(J−1).
* order 0: x ⋆ φ_J; order 1: |x ⋆ ψ_{j1,θ1}| ⋆ φ_J; order 2:
  ||x ⋆ ψ_{j1,θ1}| ⋆ ψ_{j2,θ2}| ⋆ φ_J for j2 > j1; every output subsampled
  by 2^J. For J = 2, L = 8: 1 + 16 + 64 = 81 channels of (M/4)×(N/4).

Images are reflect-padded to a multiple of 2^J with room for the filters'
support and the padding is cropped from the output. Subsampling a signal by
k is done in the Fourier domain by averaging the k×k spectral folds (exactly
the spatial subsampling of the full-resolution convolution); a filter is
applied at a coarser resolution by keeping its spectrum's band that the
coarse grid represents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

__all__ = ["Scattering2d", "gabor", "morlet"]

_PERIODS = range(-2, 3)
"""Neighbouring periods summed when periodising a filter on the grid (its tails beyond are negligible)."""


def gabor(
    size: tuple[int, int], *, sigma: float, theta: float, xi: float, slant: float = 1.0
) -> npt.NDArray[np.complex128]:
    """A Gabor filter on an ``size`` grid, periodised, origin at index (0, 0), unit L1 mass of its envelope.

    Envelope exp(−xᵀ R D R⁻¹ x / 2σ²) with D = diag(1, slant²) and R the
    rotation by ``theta``; carrier exp(i ξ (x cos θ + y sin θ)).
    """
    rows, cols = size
    cos, sin = math.cos(theta), math.sin(theta)
    rotation = np.array([[cos, -sin], [sin, cos]])
    curvature = rotation @ np.diag([1.0, slant * slant]) @ rotation.T / (2 * sigma * sigma)
    filt = np.zeros(size, dtype=np.complex128)
    for ex in _PERIODS:
        for ey in _PERIODS:
            xx, yy = np.mgrid[ex * rows : (ex + 1) * rows, ey * cols : (ey + 1) * cols]
            quadratic = (
                curvature[0, 0] * xx * xx + (curvature[0, 1] + curvature[1, 0]) * xx * yy + curvature[1, 1] * yy * yy
            )
            filt += np.exp(-quadratic + 1j * xi * (xx * cos + yy * sin))
    return filt / (2 * math.pi * sigma * sigma / slant)


def morlet(size: tuple[int, int], *, sigma: float, theta: float, xi: float, slant: float) -> npt.NDArray[np.complex128]:
    """A Morlet wavelet: the Gabor filter minus the multiple of its envelope that makes its mean zero."""
    wave = gabor(size, sigma=sigma, theta=theta, xi=xi, slant=slant)
    envelope = gabor(size, sigma=sigma, theta=theta, xi=0.0, slant=slant)
    return wave - (wave.sum() / envelope.sum()) * envelope  # type: ignore[no-any-return]


def _fold_mean(spectrum: torch.Tensor, factor: int) -> torch.Tensor:
    """Spectrum of the signal subsampled by ``factor`` in both axes (the mean of the spectral folds).

    Summed slice by slice: a ``reshape(...).mean`` over the fold axes of a
    complex tensor is several times slower on CPU.
    """
    if factor == 1:
        return spectrum
    rows, cols = spectrum.shape[-2] // factor, spectrum.shape[-1] // factor
    total = spectrum[..., :rows, :cols].clone()
    for a in range(factor):
        for b in range(factor):
            if a or b:
                total += spectrum[..., a * rows : (a + 1) * rows, b * cols : (b + 1) * cols]
    return total / (factor * factor)


def _band(spectrum: npt.NDArray[np.float64], factor: int) -> npt.NDArray[np.float64]:
    """A filter's frequency response on a grid ``factor`` times coarser: its spectrum's low band, periodised."""
    if factor == 1:
        return spectrum
    rows, cols = spectrum.shape
    keep_rows, keep_cols = np.ones(rows), np.ones(cols)
    keep_rows[rows // (2 * factor) : rows - rows // (2 * factor)] = 0
    keep_cols[cols // (2 * factor) : cols - cols // (2 * factor)] = 0
    masked = spectrum * np.outer(keep_rows, keep_cols)
    return masked.reshape(factor, rows // factor, factor, cols // factor).sum(axis=(0, 2))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Filters:
    phi: dict[int, torch.Tensor]
    """Low-pass spectrum at each resolution (key: log2 of the subsampling already applied)."""
    psi: dict[tuple[int, int], torch.Tensor]
    """(j, resolution) → the L wavelet spectra of scale j at that resolution, shape (L, rows, cols)."""


class Scattering2d:
    """Second-order 2-D scattering of (batch, M, N) float images → (batch, channels, M/2^J, N/2^J).

    Stateless and data-independent: the filters depend on (M, N, J, L) only.
    """

    def __init__(self, shape: tuple[int, int], *, scales: int = 2, orientations: int = 8) -> None:
        if scales < 1 or orientations < 1:
            raise ValueError("scattering: scales and orientations must be >= 1")
        rows, cols = shape
        step = 2**scales
        if rows % step or cols % step:
            raise ValueError(f"scattering: image shape {shape} must be divisible by 2**scales = {step}")
        self.shape = shape
        self.scales = scales
        self.orientations = orientations
        self.padded = (((rows + step) // step + 1) * step, ((cols + step) // step + 1) * step)
        self.pad = ((self.padded[0] - rows) // 2, (self.padded[1] - cols) // 2)
        self._filters = self._build()

    @property
    def channels(self) -> int:
        """1 + J·L + L²·J(J−1)/2 (81 for J = 2, L = 8)."""
        j, l_ = self.scales, self.orientations
        return 1 + j * l_ + l_ * l_ * j * (j - 1) // 2

    def _build(self) -> _Filters:
        size = self.padded
        slant = 4.0 / self.orientations
        # The low-pass's width is 0.8·2^(J−1), as in kymatio (its support still spans the 2^J output step).
        phi_full = np.real(np.fft.fft2(gabor(size, sigma=0.8 * 2 ** (self.scales - 1), theta=0.0, xi=0.0)))
        phi = {res: torch.from_numpy(_band(phi_full, 2**res)).to(torch.float32) for res in range(self.scales)}
        psi: dict[tuple[int, int], torch.Tensor] = {}
        for j in range(self.scales):
            spectra = []
            for index in range(self.orientations):
                theta = (int(self.orientations - self.orientations / 2 - 1) - index) * math.pi / self.orientations
                wavelet = morlet(size, sigma=0.8 * 2**j, theta=theta, xi=3.0 / 4.0 * math.pi / 2**j, slant=slant)
                # A Morlet wavelet satisfies ψ(−x) = conj ψ(x), so its spectrum is real.
                spectra.append(np.real(np.fft.fft2(wavelet)))
            for res in range(j + 1):
                psi[(j, res)] = torch.from_numpy(np.stack([_band(s, 2**res) for s in spectra])).to(torch.float32)
        return _Filters(phi=phi, psi=psi)

    def _lowpass(self, spectrum: torch.Tensor, res: int) -> torch.Tensor:
        """Real part of (signal ⋆ φ_J) subsampled to the output grid, padding cropped."""
        out: torch.Tensor = torch.fft.ifft2(
            _fold_mean(spectrum * self._filters.phi[res], 2 ** (self.scales - res))
        ).real
        rows, cols = self.shape
        step = 2**self.scales
        top, left = self.pad[0] // step, self.pad[1] // step
        return out[..., top : top + rows // step, left : left + cols // step]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Scattering coefficients, ordered: order 0, order 1 by (j1, θ1), order 2 by (j1, θ1, j2, θ2)."""
        if images.dim() != 3 or tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"scattering expects (batch, {self.shape[0]}, {self.shape[1]}); got {tuple(images.shape)}")
        x = F.pad(images.to(torch.float32).unsqueeze(1), (self.pad[1],) * 2 + (self.pad[0],) * 2, mode="reflect")
        spectrum = torch.fft.fft2(x.squeeze(1))
        batch = images.shape[0]
        outputs = [self._lowpass(spectrum, 0).unsqueeze(1)]
        second: list[torch.Tensor] = []
        for j1 in range(self.scales):
            # |x ⋆ ψ_{j1,θ1}| at resolution 2^−j1 (the wavelet's band fits that grid).
            u1 = torch.fft.ifft2(_fold_mean(spectrum.unsqueeze(1) * self._filters.psi[(j1, 0)], 2**j1)).abs()
            u1_spectrum = torch.fft.fft2(u1)
            outputs.append(self._lowpass(u1_spectrum, j1))
            for j2 in range(j1 + 1, self.scales):
                products = u1_spectrum.unsqueeze(2) * self._filters.psi[(j2, j1)]  # (B, L, L, rows, cols)
                u2 = torch.fft.ifft2(_fold_mean(products, 2 ** (j2 - j1))).abs()
                s2 = self._lowpass(torch.fft.fft2(u2), j2)
                second.append(s2.reshape(batch, self.orientations * self.orientations, *s2.shape[-2:]))
        # kymatio's order: order 0, every order-1 map by (j1, θ1), every order-2 map by (j1, θ1, j2, θ2).
        return torch.cat([*outputs, *self._order_two(second, batch)], dim=1)

    def _order_two(self, second: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
        """Order-2 blocks (one per (j1, j2), channels θ1-major) reordered to (j1, θ1, j2, θ2)."""
        l_ = self.orientations
        ordered: list[torch.Tensor] = []
        index = 0
        for j1 in range(self.scales):
            blocks = second[index : index + self.scales - j1 - 1]
            index += len(blocks)
            for t1 in range(l_):
                ordered += [block[:, t1 * l_ : (t1 + 1) * l_] for block in blocks]
        return ordered
