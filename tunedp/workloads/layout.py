"""Built-in convolutional models keep their weights channels-last: why, and what that changes.

On CPU, PyTorch runs the small networks DP training uses much faster on
channels-last (NHWC) activations than on its default NCHW ones: oneDNN's
convolution weight gradients and, above all, max-pooling with stride 1 take
a slow path on NCHW. Measured on a 2-core AMD EPYC, one thread, one training
step of the Tramèr–Boneh CNN at batch 256 (``benchmarks/optim.py``): 45.9 ms
NCHW against 20.2 ms channels-last, the private (ghost-clipped) step 44.8 ms
against 28.5 ms; the digits CNN 25 % faster; the ScatterNet CNN head's
private step 18 % (``benchmarks/README.md``, "Channels-last built-in CNNs").

Converting the model is enough. A convolution whose weight is channels-last
computes in that layout whatever its input's (one-channel pixels are the
same bytes in either), and its output stays channels-last for the
activations and pools after it; ``flatten`` copies back to the logical
order. The model is the same function of the same parameters: only the
rounding of the convolutions' sums differs (≈ 1e-9 here,
``tests/unit/workloads/test_layout.py``), and the optimizer draws its noise
in logical order whatever a parameter's layout
(:func:`tunedp.optim.noise.gaussian_noise_like`), so a seed still names one
noise draw.

Only tunedp's own models are converted. A user's model may ``view`` an
activation as if it were contiguous, which a channels-last tensor refuses,
so the trial loop leaves a user's layout as the user built it.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

__all__ = ["channels_last"]

M = TypeVar("M", bound=nn.Module)


def channels_last(model: M) -> M:
    """``model`` with every 4-D parameter and buffer (its convolutions' weights) stored channels-last."""
    # Module.to converts 4-D tensors in place and returns the module itself; torch's stubs do not
    # admit the memory_format-only overload.
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
