"""Running a model with no lasting effect, and recording what each of its modules did.

Why a module of its own: the batch-mixing probe
(:mod:`tunedp.optim.independence`) decides from a handful of forwards whether
a model treats examples independently; this module is the machinery those
forwards need and nothing of the verdict — a context that puts back every
parameter, buffer, training mode and torch's RNG state afterwards
(:func:`preserved`, :class:`ModelState`), and a recorder that runs the model
under a fixed seed and keeps each module call's input and outputs
(:class:`Recorder`), so the probe can name the first module whose output
moved. It never trains, clips or adds noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "PROBE_SEED",
    "Call",
    "ModelState",
    "Recorder",
    "Run",
    "cuda_devices",
    "describe",
    "identical",
    "preserved",
    "rows_same",
    "same",
    "tensors_of",
]

PROBE_SEED = 0x7E57
"""torch seed of every probe forward: dropout draws the same masks for batches of the same shape."""


@dataclass(slots=True)
class Call:
    """One module call of a probe forward: its first tensor argument and the tensors it returned."""

    module: nn.Module
    argument: Tensor | None
    outputs: list[Tensor]


@dataclass(slots=True)
class Run:
    outputs: list[Tensor]
    calls: list[Call] = field(default_factory=list)


def tensors_of(value: Any) -> list[Tensor]:
    """The tensors in a module's output (a tensor, or a tuple/list/dict of them; others ignored)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for item in value for t in tensors_of(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_of(item)]
    return []


def same(a: Tensor, b: Tensor) -> bool:
    """Equal up to float32 rounding (the tolerance of the ghost path's own comparisons); NaN equals NaN."""
    if a.shape != b.shape:
        return False
    if not (a.is_floating_point() or a.is_complex()):
        return torch.equal(a, b.to(a.dtype))
    b = b.to(a.dtype)
    scale = float(b.abs().nan_to_num(posinf=0.0, neginf=0.0).max()) if b.numel() else 0.0
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1.0), equal_nan=True)


def rows_same(a: Tensor, b: Tensor, rows: list[int], count: int) -> bool:
    """Rows ``rows`` of two tensors of ``count`` examples agree (a tensor without that leading size: all of it)."""
    if a.shape != b.shape:
        return False
    if a.dim() == 0 or a.shape[0] != count:
        return same(a, b)
    index = torch.tensor(rows, device=a.device)
    return same(a.index_select(0, index), b.index_select(0, index))


class ModelState:
    """Every parameter and buffer of the model, to tell what a forward changed and to put it back."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = list(model.named_modules(remove_duplicate=False))
        self.slots = [(dict(m._parameters), dict(m._buffers)) for _, m in self.modules]
        tensors = {
            id(t): t for params, buffers in self.slots for t in (*params.values(), *buffers.values()) if t is not None
        }
        self.values = [(t, t.detach().clone()) for t in tensors.values()]

    def changed(self) -> list[str]:
        """``'a', 'b' of module …`` for each module whose parameters or buffers a forward replaced or wrote to."""
        written = {id(t) for t, saved in self.values if not identical(t.detach(), saved)}
        found: dict[str, list[str]] = {}
        for (name, module), (params, buffers) in zip(self.modules, self.slots, strict=True):
            for before, now in ((params, module._parameters), (buffers, module._buffers)):
                for key in sorted(set(before) | set(now)):
                    old, new = before.get(key), now.get(key)
                    if old is not new or (new is not None and id(new) in written):
                        keys = found.setdefault(describe(name, module), [])
                        keys += [repr(key)] if repr(key) not in keys else []
        return [f"{', '.join(keys)} of {where}" for where, keys in found.items()]

    def restore(self) -> None:
        for (_, module), (params, buffers) in zip(self.modules, self.slots, strict=True):
            for now, before in ((module._parameters, params), (module._buffers, buffers)):
                if now.keys() != before.keys() or any(now[key] is not value for key, value in before.items()):
                    now.clear()
                    now.update(before)
        with torch.no_grad():
            for tensor, saved in self.values:
                if not identical(tensor.detach(), saved):
                    tensor.copy_(saved)


def describe(name: str, module: nn.Module) -> str:
    """How a message names a module: ``module 'block.norm' (MyNorm)``, or ``the model (MyNet)`` for the root."""
    return f"module {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"


def identical(a: Tensor, b: Tensor) -> bool:
    """Bit-for-bit the same values (NaN included): a forward that leaves a buffer alone leaves it identical."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return torch.equal(a, b)


def cuda_devices() -> list[int]:
    """The CUDA devices whose generators a probe seeds and restores: all, once CUDA is in use; none before.

    A process that has not touched CUDA keeps it untouched (seeding it would
    queue a seed for its first use), and a model cannot be on CUDA before.
    """
    initialized: bool = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return list(range(torch.cuda.device_count())) if initialized else []


@contextmanager
def preserved(model: nn.Module) -> Iterator[ModelState]:
    """Run probes with no lasting effect: parameters, buffers, training modes and torch's RNG are put back."""
    modes = [(module, module.training) for module in model.modules()]
    state = ModelState(model)
    devices = cuda_devices()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield state
    finally:
        state.restore()
        for module, training in modes:
            module.training = training


class Recorder:
    """Runs the model under a fixed seed, recording every module call (for naming the one that mixes)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self._calls: list[Call] = []
        self._cuda = bool(cuda_devices())

    @contextmanager
    def hooked(self) -> Iterator[Recorder]:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            argument = next((a for a in args if isinstance(a, Tensor)), None)
            self._calls.append(Call(module, argument, tensors_of(output)))

        handles = [module.register_forward_hook(record) for module in self.model.modules()]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def run(self, inputs: Tensor, seed: int = PROBE_SEED) -> Run:
        # The CPU generator, and CUDA's where it is in use (torch.manual_seed would also queue a CUDA seed).
        torch.default_generator.manual_seed(seed)
        if self._cuda:
            torch.cuda.manual_seed_all(seed)
        self._calls = []
        outputs = tensors_of(self.model(inputs))
        return Run(outputs, self._calls)

    def name(self, module: nn.Module) -> str:
        return describe(self.names.get(id(module), ""), module)

    def where(self, base: Run, other: Run, rows: list[int], count: int) -> str:
        """The first module (in the order calls finish: innermost first) whose output rows ``rows`` differ."""
        if len(base.calls) == len(other.calls) and all(
            a.module is b.module for a, b in zip(base.calls, other.calls, strict=True)
        ):
            for a, b in zip(base.calls, other.calls, strict=True):
                if len(a.outputs) == len(b.outputs) and all(
                    rows_same(x, y, rows, count) for x, y in zip(a.outputs, b.outputs, strict=True)
                ):
                    continue
                inputs_differ = (
                    a.argument is not None
                    and b.argument is not None
                    and not rows_same(a.argument, b.argument, rows, count)
                )
                if not inputs_differ:
                    return self.name(a.module)
                parent, _, child = self.names.get(id(a.module), "").rpartition(".")
                owner = type(self.model.get_submodule(parent)).__name__
                return f"{owner}.forward (before its submodule {child!r})"
        return self.name(self.model)
