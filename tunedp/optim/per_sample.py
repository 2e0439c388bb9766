"""Per-example gradients with ``torch.func``: ``functional_call`` + ``vmap`` + ``grad``.

The model is called on one example at a time (the example unsqueezed to a batch
of one) inside ``vmap``, so each example's gradient is the gradient of *its
own* loss — the quantity DP clipping needs — while the work is still batched.
Batches are processed in chunks of ``chunk_size`` examples so the memory of the
per-example gradients stays bounded (chunk × number of parameters).

Models that mix examples inside the forward pass (BatchNorm in training mode,
any statistic over the batch) make per-example gradients meaningless and break
the sensitivity bound, and a model that keeps statistics of the data in its
state (running means) releases them without noise. Both are refused:
:func:`check_model` names BatchNorm as soon as the model is given, and
:func:`check_batch_independence` decides for any module by what its training
forward *does*. This module never clips, adds noise or updates parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from tunedp.errors import UserFacingError

__all__ = [
    "BatchMixingError",
    "IndependenceProbe",
    "LossFn",
    "check_batch_independence",
    "check_model",
    "per_example_gradients",
    "trainable_parameters",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets)`` on a batch of ONE example (leading dimension 1).

It may reduce by mean or sum, or return the per-example vector of length one:
the result is summed, and on a batch of one all three are that example's loss.
"""

_FIX = "use GroupNorm or LayerNorm (per example), not batch statistics (BatchNorm, x - x.mean(0))"
_NO_STATISTICS = "keep no statistics of the data in the model (GroupNorm or LayerNorm, not BatchNorm)"
_WHY = "per-example clipping cannot bound its sensitivity"


class BatchMixingError(UserFacingError):
    """The model's training forward lets examples affect one another, or keeps statistics of the data.

    Neither clipping path can bound such a model's sensitivity: removing one
    example moves the other examples' gradients, or its statistics are
    released with the model without noise. One line naming the module and
    the fix; raised on the first batch, before anything of it is summed (and
    so, through the pre-flight's synthetic step, before a search is charged).
    """


def check_model(model: nn.Module) -> None:
    """Refuse BatchNorm at once (one-line :class:`BatchMixingError`): it mixes examples in training mode.

    Only the commonest case, named before any data is seen; the rule for
    every module is :func:`check_batch_independence`.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            where = name or type(model).__name__
            raise BatchMixingError(
                f"model contains BatchNorm ({where}): it mixes examples, so per-example gradients and the "
                "DP sensitivity bound do not hold; use GroupNorm or LayerNorm instead"
            )


# ---------------------------------------------------------------------------- the behavioural probe

_PROBE_ROWS = 4
"""Examples of the first batch the probe runs the model on."""
_PROBE_SEED = 0x7E57
"""torch seed of every probe forward: dropout draws the same masks for batches of the same shape."""


@dataclass(frozen=True, slots=True)
class IndependenceProbe:
    """What a passed probe found about the ``watch``ed modules (the ghost path's per-layer book-keeping).

    ``layer_problems`` is empty when row i of every watched module's input is
    example i's alone, in eval and in training mode.
    """

    layer_problems: tuple[str, ...]


@dataclass(slots=True)
class _Call:
    """One module call of a probe forward: its first tensor argument and the tensors it returned."""

    module: nn.Module
    argument: Tensor | None
    outputs: list[Tensor]


@dataclass(slots=True)
class _Run:
    outputs: list[Tensor]
    calls: list[_Call] = field(default_factory=list)


def _tensors(value: Any) -> list[Tensor]:
    """The tensors in a module's output (a tensor, or a tuple/list/dict of them; others ignored)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _same(a: Tensor, b: Tensor) -> bool:
    """Equal up to float32 rounding (the tolerance of the ghost path's own comparisons); NaN equals NaN."""
    if a.shape != b.shape:
        return False
    if not (a.is_floating_point() or a.is_complex()):
        return torch.equal(a, b.to(a.dtype))
    b = b.to(a.dtype)
    scale = float(b.abs().nan_to_num(posinf=0.0, neginf=0.0).max()) if b.numel() else 0.0
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1.0), equal_nan=True)


def _rows_same(a: Tensor, b: Tensor, rows: list[int], count: int) -> bool:
    """Rows ``rows`` of two tensors of ``count`` examples agree (a tensor without that leading size: all of it)."""
    if a.shape != b.shape:
        return False
    if a.dim() == 0 or a.shape[0] != count:
        return _same(a, b)
    index = torch.tensor(rows, device=a.device)
    return _same(a.index_select(0, index), b.index_select(0, index))


class _State:
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
        written = {id(t) for t, saved in self.values if not _identical(t.detach(), saved)}
        found: dict[str, list[str]] = {}
        for (name, module), (params, buffers) in zip(self.modules, self.slots, strict=True):
            for before, now in ((params, module._parameters), (buffers, module._buffers)):
                for key in sorted(set(before) | set(now)):
                    old, new = before.get(key), now.get(key)
                    if old is not new or (new is not None and id(new) in written):
                        keys = found.setdefault(_describe(name, module), [])
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
                if not _identical(tensor.detach(), saved):
                    tensor.copy_(saved)


def _describe(name: str, module: nn.Module) -> str:
    """How a message names a module: ``module 'block.norm' (MyNorm)``, or ``the model (MyNet)`` for the root."""
    return f"module {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"


def _identical(a: Tensor, b: Tensor) -> bool:
    """Bit-for-bit the same values (NaN included): a forward that leaves a buffer alone leaves it identical."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return torch.equal(a, b)


def _cuda_devices() -> list[int]:
    """The CUDA devices whose generators a probe seeds and restores: all, once CUDA is in use; none before.

    A process that has not touched CUDA keeps it untouched (seeding it would
    queue a seed for its first use), and a model cannot be on CUDA before.
    """
    initialized: bool = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return list(range(torch.cuda.device_count())) if initialized else []


@contextmanager
def _preserved(model: nn.Module) -> Iterator[_State]:
    """Run probes with no lasting effect: parameters, buffers, training modes and torch's RNG are put back."""
    modes = [(module, module.training) for module in model.modules()]
    state = _State(model)
    devices = _cuda_devices()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield state
    finally:
        state.restore()
        for module, training in modes:
            module.training = training


class _Recorder:
    """Runs the model under a fixed seed, recording every module call (for naming the one that mixes)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self._calls: list[_Call] = []
        self._cuda = bool(_cuda_devices())

    @contextmanager
    def hooked(self) -> Iterator[_Recorder]:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            argument = next((a for a in args if isinstance(a, Tensor)), None)
            self._calls.append(_Call(module, argument, _tensors(output)))

        handles = [module.register_forward_hook(record) for module in self.model.modules()]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def run(self, inputs: Tensor, seed: int = _PROBE_SEED) -> _Run:
        # The CPU generator, and CUDA's where it is in use (torch.manual_seed would also queue a CUDA seed).
        torch.default_generator.manual_seed(seed)
        if self._cuda:
            torch.cuda.manual_seed_all(seed)
        self._calls = []
        outputs = _tensors(self.model(inputs))
        return _Run(outputs, self._calls)

    def name(self, module: nn.Module) -> str:
        return _describe(self.names.get(id(module), ""), module)

    def where(self, base: _Run, other: _Run, rows: list[int], count: int) -> str:
        """The first module (in the order calls finish: innermost first) whose output rows ``rows`` differ."""
        if len(base.calls) == len(other.calls) and all(
            a.module is b.module for a, b in zip(base.calls, other.calls, strict=True)
        ):
            for a, b in zip(base.calls, other.calls, strict=True):
                if len(a.outputs) == len(b.outputs) and all(
                    _rows_same(x, y, rows, count) for x, y in zip(a.outputs, b.outputs, strict=True)
                ):
                    continue
                inputs_differ = (
                    a.argument is not None
                    and b.argument is not None
                    and not _rows_same(a.argument, b.argument, rows, count)
                )
                if not inputs_differ:
                    return self.name(a.module)
                parent, _, child = self.names.get(id(a.module), "").rpartition(".")
                owner = type(self.model.get_submodule(parent)).__name__
                return f"{owner}.forward (before its submodule {child!r})"
        return self.name(self.model)


def _outputs_same(a: _Run, b: _Run, rows: list[int], count: int) -> bool:
    return len(a.outputs) == len(b.outputs) and all(
        _rows_same(x, y, rows, count) for x, y in zip(a.outputs, b.outputs, strict=True)
    )


def _perturbed(inputs: Tensor, row: int) -> Tensor | None:
    """``inputs`` with example ``row`` replaced by a different one (None: no different one to use)."""
    changed = inputs.clone()
    if inputs.is_floating_point():
        generator = torch.Generator().manual_seed(row)
        noise = torch.randn(inputs.shape[1:], generator=generator, dtype=torch.float64)
        spread = float(inputs.double().nan_to_num().std()) if inputs.numel() > 1 else 0.0
        changed[row] = inputs[row] + ((spread + 1.0) * noise).to(inputs.device, inputs.dtype)
        return changed
    others = [k for k in range(inputs.shape[0]) if not torch.equal(inputs[k], inputs[row])]
    if not others:
        return None
    changed[row] = inputs[others[0]]
    return changed


_MOVED = "the model's batched forward pass mixes or reorders examples (a layer's input row is not that example's alone)"


def _layer_rows(base: _Run, others: Sequence[tuple[_Run, list[int] | int]], watch: set[int], count: int) -> list[str]:
    """Problems of the watched modules: an input that does not keep the batch first, or rows that moved.

    Each ``(run, rows)`` is compared with ``base`` call by call: a run of the
    same batch on rows ``rows`` (the examples it did not change), a run of
    example k alone (``rows`` = k) against row k of ``base``.
    """
    first = [c for c in base.calls if id(c.module) in watch]
    for call in first:
        if call.argument is not None and (call.argument.dim() == 0 or call.argument.shape[0] != count):
            return ["a layer does not keep the batch as its first dimension"]
    for other, rows in others:
        second = [c for c in other.calls if id(c.module) in watch]
        if len(second) != len(first):
            continue  # a layer called other than once per forward is refused when the chunk runs
        for a, b in zip(first, second, strict=True):
            if a.argument is None or b.argument is None:
                continue
            if isinstance(rows, int):
                if b.argument.dim() == 0 or b.argument.shape[0] != 1:
                    return ["a layer does not keep the batch as its first dimension"]
                if not _same(a.argument[rows : rows + 1], b.argument):
                    return [_MOVED]
            elif not _rows_same(a.argument, b.argument, rows, count):
                return [_MOVED]
    return []


def _cat(parts: Sequence[Tensor | None]) -> Tensor | None:
    if any(part is None for part in parts):
        return None
    try:
        return torch.cat([part for part in parts if part is not None])
    except RuntimeError:
        return None


def _joined(alone: Sequence[_Run], like: _Run) -> _Run | None:
    """The single-example runs stacked as one batch run (None: their outputs do not stack like ``like``'s).

    Module calls are stacked too where every run made the same calls as ``like``,
    so :meth:`_Recorder.where` can name the first module that differs.
    """
    if any(len(run.outputs) != len(like.outputs) for run in alone):
        return None
    outputs = [_cat([run.outputs[k] for run in alone]) for k in range(len(like.outputs))]
    if any(output is None for output in outputs):
        return None
    calls: list[_Call] = []
    if all(
        len(run.calls) == len(like.calls)
        and all(a.module is b.module for a, b in zip(run.calls, like.calls, strict=True))
        for run in alone
    ):
        for index, call in enumerate(like.calls):
            parts = [run.calls[index] for run in alone]
            stacked = [
                _cat([part.outputs[k] if k < len(part.outputs) else None for part in parts])
                for k in range(len(call.outputs))
            ]
            calls.append(
                _Call(call.module, _cat([part.argument for part in parts]), [t for t in stacked if t is not None])
            )
    return _Run([output for output in outputs if output is not None], calls)


def check_batch_independence(
    model: nn.Module, inputs: Tensor, *, watch: Sequence[nn.Module] = ()
) -> IndependenceProbe | None:
    """Refuse a model whose training forward mixes examples or keeps statistics of them (:class:`BatchMixingError`).

    Decided by behaviour, on the first ``_PROBE_ROWS`` examples of ``inputs``,
    with the model in training mode — as it trains — and every forward under
    the same torch seed, so dropout draws the same masks and its randomness is
    never taken for mixing:

    * replacing example j must leave every other example's output unchanged
      (a statistic over the batch — ``x - x.mean(0)``, ``F.batch_norm(...,
      training=True)`` — fails this; the first module whose output moves is
      named);
    * where the training forward is deterministic (once ``nn.Dropout``
      modules are off, if need be), each example's output alone must equal
      its row in the batch (an output that depends on the batch's size);
    * the forward must change no parameter or buffer (running statistics of
      private data would be released without noise), must be reproducible
      under one seed, and must not change the eval-mode output afterwards
      (statistics kept outside buffers).

    Returns None when ``inputs`` holds fewer than 2 examples (nothing
    checked: call again with a larger batch), else what was found about the
    ``watch``ed modules for the ghost path. The model is left exactly as it
    was: parameters, buffers (running statistics included), training modes
    and torch's RNG state are restored, even when it raises. A mixing that
    the probe's examples do not reveal is outside what it can check.
    """
    count = min(int(inputs.shape[0]), _PROBE_ROWS)
    if count < 2:
        return None
    probe = inputs[:count].detach()
    everyone = list(range(count))
    watched = {id(m) for m in watch}
    problems: list[str] = []
    recorder = _Recorder(model)
    with _preserved(model) as state, recorder.hooked():
        model.eval()
        eval_before = recorder.run(probe)
        model.train()
        base = recorder.run(probe)
        _refuse_writes(state)
        if not _outputs_same(base, recorder.run(probe), everyone, count):
            raise BatchMixingError(
                "model: its training forward gives another output for the same batch under the same torch seed: "
                "keep no state between calls and draw randomness from torch; otherwise it cannot be checked to "
                "treat examples independently"
            )
        for row in everyone:
            changed = _perturbed(probe, row)
            if changed is None:
                continue
            run = recorder.run(changed)
            others = [i for i in everyone if i != row]
            if not _outputs_same(base, run, others, count):
                where = recorder.where(base, run, others, count)
                raise BatchMixingError(f"model: {where} mixes examples in training mode: {_FIX}; {_WHY}")
            problems += _layer_rows(base, [(run, others)], watched, count)
        if not _outputs_same(base, recorder.run(probe, _PROBE_SEED + 1), everyone, count):
            # Random in training mode: dropout masks differ between batch shapes, so compare without them.
            for module in model.modules():
                if isinstance(module, nn.modules.dropout._DropoutNd):
                    module.eval()
            base = recorder.run(probe)
        if _outputs_same(base, recorder.run(probe, _PROBE_SEED + 1), everyone, count):
            alone = [recorder.run(probe[i : i + 1]) for i in everyone]
            joined = _joined(alone, base)
            if joined is None or not _outputs_same(base, joined, everyone, count):
                where = recorder.name(model) if joined is None else recorder.where(base, joined, everyone, count)
                raise BatchMixingError(
                    f"model: {where} makes an example's training-mode output depend on its batch: {_FIX}; {_WHY}"
                )
            problems += _layer_rows(base, [(run, k) for k, run in enumerate(alone)], watched, count)
        _refuse_writes(state)
        model.eval()
        if not _outputs_same(eval_before, recorder.run(probe), everyone, count):
            raise BatchMixingError(
                f"model: a training forward changes its later eval-mode output: {_NO_STATISTICS}, not even outside "
                "its buffers; they would be released without noise"
            )
        if watched:
            alone = [recorder.run(probe[i : i + 1]) for i in everyone]
            joined = _joined(alone, eval_before)
            problems += _layer_rows(eval_before, [(run, k) for k, run in enumerate(alone)], watched, count)
            if joined is None or not _outputs_same(eval_before, joined, everyone, count):
                problems.append(
                    "the model's batched forward pass mixes or reorders examples "
                    "(its eval-mode output differs from one example at a time)"
                )
    return IndependenceProbe(layer_problems=tuple(dict.fromkeys(problems)))


def _refuse_writes(state: _State) -> None:
    written = state.changed()
    if written:
        raise BatchMixingError(
            f"model: its training forward writes {'; '.join(written[:2])}: {_NO_STATISTICS}; "
            "statistics of the private data would be released without noise"
        )


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The parameters that get private gradients, by name, in ``named_parameters`` order.

    Frozen parameters (``requires_grad=False``) are left to the model and never updated.
    """
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def _chunks(size: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, size, chunk_size):
        yield slice(start, min(start + chunk_size, size))


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
