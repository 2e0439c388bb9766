"""Per-example gradients with ``torch.func``: ``functional_call`` + ``vmap`` + ``grad``.

The model is called on one example at a time (the example unsqueezed to a batch
of one) inside ``vmap``, so each example's gradient is the gradient of *its
own* loss — the quantity DP clipping needs — while the work is still batched.
Batches are processed in chunks of ``chunk_size`` examples so the memory of the
per-example gradients stays bounded (chunk × number of parameters).

Models that mix examples inside the forward pass, or keep statistics of the
data, are refused before any gradient is taken: that check is
:mod:`tunedp.optim.independence`, shared with the ghost path. This module
never clips, adds noise or updates parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from tunedp.optim.independence import check_batch_independence, check_model

__all__ = ["LossFn", "per_example_gradients", "trainable_parameters"]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets)`` on a batch of ONE example (leading dimension 1).

It may reduce by mean or sum, or return the per-example vector of length one:
the result is summed, and on a batch of one all three are that example's loss.
"""


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The parameters that get private gradients, by name, in ``named_parameters`` order.

    Frozen parameters (``requires_grad=False``) are left to the model and never updated.
    """
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def _chunks(size: int, chunk_size: int) -> Iterator[slice]:
    """The fewest passes of at most ``chunk_size`` rows, of equal size (±1).

    Equal, not ``chunk_size`` then the rest: a Poisson batch a few rows above
    the chunk size would otherwise pay a whole pass for those few rows.
    """
    passes = -(-size // chunk_size)
    base, extra = divmod(size, max(passes, 1))
    start = 0
    for index in range(passes):
        stop = start + base + (1 if index < extra else 0)
        yield slice(start, stop)
        start = stop


class _PerExample:
    """The vmapped gradient function of one (model, loss_fn) pair.

    Built once and reused across chunks, so the transform is not rebuilt per chunk.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        self._model = model
        self._loss_fn = loss_fn

        def example_loss(params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
            outputs = functional_call(self._model, params, (inputs.unsqueeze(0),))
            return self._loss_fn(outputs, targets.unsqueeze(0)).sum()

        # randomness="different": dropout draws an independent mask per example, as in a normal batch.
        self._function = vmap(grad(example_loss), in_dims=(None, 0, 0), randomness="different")

    def __call__(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> list[Tensor]:
        gradients: dict[str, Tensor] = self._function(params, inputs, targets)
        return [gradients[name] for name in params]


def per_example_gradients(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
    *,
    chunk_size: int = 256,
) -> list[Tensor]:
    """Each example's gradient, one tensor of shape ``(batch, *param.shape)`` per trainable parameter.

    This materialises the whole batch's gradients: it is for inspection and
    tests. Training goes through :class:`tunedp.optim.Privatizer`, which clips
    and sums chunk by chunk instead.
    """
    if chunk_size < 1:
        raise ValueError(f"Expected chunk_size={chunk_size} >= 1")
    check_model(model)
    check_batch_independence(model, inputs)
    params = {name: param.detach() for name, param in trainable_parameters(model).items()}
    if inputs.shape[0] == 0:
        return [torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for p in params.values()]
    function = _PerExample(model, loss_fn)
    parts = [function(params, inputs[rows], targets[rows]) for rows in _chunks(inputs.shape[0], chunk_size)]
    return [torch.cat(per_param) for per_param in zip(*parts, strict=True)]
