"""tunedp/workloads/scattering.py: the 2-D Morlet scattering transform, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from tunedp.workloads.scattering import Scattering2d, gabor, morlet


@pytest.fixture(scope="module")
def transform() -> Scattering2d:
    return Scattering2d((28, 28), scales=2, orientations=8)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(6, 28, 28, generator=torch.Generator().manual_seed(3))


def _spatial_circular(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution with a filter stored with its origin at index (0, 0), computed in space."""
    centred = np.fft.fftshift(kernel)  # origin moves to (n//2, n//2): what ndimage's centred kernel expects
    real = ndimage.convolve(image, centred.real, mode="wrap")
    imag = ndimage.convolve(image, centred.imag, mode="wrap") if np.iscomplexobj(kernel) else 0.0
    return real + 1j * imag


def test_shape_and_channel_count(transform: Scattering2d, images: torch.Tensor) -> None:
    out = transform(images)
    assert transform.channels == 81
    assert out.shape == (6, 81, 7, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_orders_zero_and_one_match_spatial_convolutions(transform: Scattering2d, images: torch.Tensor) -> None:
    """S0 and the finest order-1 maps recomputed by direct convolution in space (no FFT, no folding)."""
    image = images[0].double().numpy()
    padded = np.pad(image, 4, mode="reflect")
    phi = gabor((36, 36), sigma=0.8 * 2, theta=0.0, xi=0.0).real
    out = transform(images[:1])[0].double().numpy()

    s0 = _spatial_circular(padded, phi).real[::4, ::4][1:8, 1:8]
    np.testing.assert_allclose(out[0], s0, rtol=1e-4, atol=1e-5)
    for index in range(8):
        theta = (int(8 - 8 / 2 - 1) - index) * np.pi / 8
        psi = morlet((36, 36), sigma=0.8, theta=theta, xi=0.75 * np.pi, slant=0.5)
        u1 = np.abs(_spatial_circular(padded, psi))
        s1 = _spatial_circular(u1, phi).real[::4, ::4][1:8, 1:8]
        np.testing.assert_allclose(out[1 + index], s1, rtol=1e-4, atol=1e-5)


def test_matches_kymatio(transform: Scattering2d, images: torch.Tensor) -> None:
    """kymatio 0.3.0 (a dev dependency) as the independent implementation; its top-level import fails with
    scipy >= 1.17 (``sph_harm``), so its 2-D frontend module is imported directly."""
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

    reference = ScatteringTorch2D(J=2, shape=(28, 28), L=8)(images)
    ours = transform(images)
    # kymatio normalises by 2·3.1415·σ² instead of 2πσ²: a 3e-5 relative difference.
    torch.testing.assert_close(ours, reference, rtol=2e-4, atol=1e-5)


def test_each_image_is_transformed_alone(transform: Scattering2d, images: torch.Tensor) -> None:
    """A per-example map: no batch statistic, so an image's features do not depend on its batch mates."""
    together = transform(images)
    for i in range(images.shape[0]):
        torch.testing.assert_close(transform(images[i : i + 1])[0], together[i], rtol=1e-5, atol=1e-6)


def test_wavelets_have_zero_mean_and_real_spectra() -> None:
    psi = morlet((36, 36), sigma=1.6, theta=0.3, xi=0.375 * np.pi, slant=0.5)
    assert abs(psi.sum()) < 1e-10
    assert np.abs(np.fft.fft2(psi).imag).max() < 1e-8


def test_bad_shape_is_one_line() -> None:
    with pytest.raises(ValueError, match="divisible by 2\\*\\*scales"):
        Scattering2d((30, 30), scales=2)
    with pytest.raises(ValueError, match="expects \\(batch, 28, 28\\)") as error:
        Scattering2d((28, 28))(torch.zeros(2, 1, 28, 28))
    assert "\n" not in str(error.value)
