"""Refusing models whose training forward mixes examples or keeps statistics of them.

Why this is checked at all: per-example clipping bounds what one example adds
to the summed gradient only if that example's gradient is a function of it
alone. A model that mixes examples inside the forward pass (BatchNorm in
training mode, any statistic over the batch) breaks the sensitivity bound on
both clipping paths, and a model that keeps statistics of the data in its
state (running means) releases them without noise. :func:`check_model`
names BatchNorm as soon as the model is given; :func:`check_batch_independence`
decides for any module by what its training forward *does*, on a few
examples of the first batch, before anything of it is summed. The forwards
it runs leave no trace (:mod:`tunedp.optim.recording`). This module never
computes gradients, clips or adds noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tunedp.errors import UserFacingError
from tunedp.optim.recording import PROBE_SEED, Call, ModelState, Recorder, Run, preserved, rows_same, same

__all__ = ["BatchMixingError", "IndependenceProbe", "check_batch_independence", "check_model"]

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


_PROBE_ROWS = 4
"""Examples of the first batch the probe runs the model on."""


@dataclass(frozen=True, slots=True)
class IndependenceProbe:
    """What a passed probe found about the ``watch``ed modules (the ghost path's per-layer book-keeping).

    ``layer_problems`` is empty when row i of every watched module's input is
    example i's alone, in eval and in training mode.
    """

    layer_problems: tuple[str, ...]


def _outputs_same(a: Run, b: Run, rows: list[int], count: int) -> bool:
    return len(a.outputs) == len(b.outputs) and all(
        rows_same(x, y, rows, count) for x, y in zip(a.outputs, b.outputs, strict=True)
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


def _layer_rows(base: Run, others: Sequence[tuple[Run, list[int] | int]], watch: set[int], count: int) -> list[str]:
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
                if not same(a.argument[rows : rows + 1], b.argument):
                    return [_MOVED]
            elif not rows_same(a.argument, b.argument, rows, count):
                return [_MOVED]
    return []


def _cat(parts: Sequence[Tensor | None]) -> Tensor | None:
    if any(part is None for part in parts):
        return None
    try:
        return torch.cat([part for part in parts if part is not None])
    except RuntimeError:
        return None


def _joined(alone: Sequence[Run], like: Run) -> Run | None:
    """The single-example runs stacked as one batch run (None: their outputs do not stack like ``like``'s).

    Module calls are stacked too where every run made the same calls as ``like``,
    so :meth:`Recorder.where` can name the first module that differs.
    """
    if any(len(run.outputs) != len(like.outputs) for run in alone):
        return None
    outputs = [_cat([run.outputs[k] for run in alone]) for k in range(len(like.outputs))]
    if any(output is None for output in outputs):
        return None
    calls: list[Call] = []
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
                Call(call.module, _cat([part.argument for part in parts]), [t for t in stacked if t is not None])
            )
    return Run([output for output in outputs if output is not None], calls)


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
    recorder = Recorder(model)
    with preserved(model) as state, recorder.hooked():
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
        if not _outputs_same(base, recorder.run(probe, PROBE_SEED + 1), everyone, count):
            # Random in training mode: dropout masks differ between batch shapes, so compare without them.
            for module in model.modules():
                if isinstance(module, nn.modules.dropout._DropoutNd):
                    module.eval()
            base = recorder.run(probe)
        if _outputs_same(base, recorder.run(probe, PROBE_SEED + 1), everyone, count):
            alone = _one_at_a_time(recorder, probe, everyone, mode="training")
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
            alone = _one_at_a_time(recorder, probe, everyone, mode="eval-mode")
            joined = _joined(alone, eval_before)
            problems += _layer_rows(eval_before, [(run, k) for k, run in enumerate(alone)], watched, count)
            if joined is None or not _outputs_same(eval_before, joined, everyone, count):
                problems.append(
                    "the model's batched forward pass mixes or reorders examples "
                    "(its eval-mode output differs from one example at a time)"
                )
    return IndependenceProbe(layer_problems=tuple(dict.fromkeys(problems)))


def _one_at_a_time(recorder: Recorder, probe: Tensor, everyone: Sequence[int], *, mode: str) -> list[Run]:
    """The forward on each probe example alone; a model that cannot run on one example is refused.

    A forward that treats examples independently runs on a batch of one, and
    Poisson sampling draws such batches. One that raises there (``F.batch_norm``
    in training mode: "Expected more than 1 value per channel") computes
    something over the batch, which two examples may not reveal: with two,
    batch normalisation maps each to about ±1, whatever the other is.
    """
    try:
        return [recorder.run(probe[i : i + 1]) for i in everyone]
    except Exception as error:  # the user's forward: whatever it raises, it cannot be checked
        cause = (str(error).strip().splitlines() or [""])[0]
        raise BatchMixingError(
            f"model: its {mode} forward fails on one example alone ({type(error).__name__}: {cause}), so an "
            f"example's output depends on its batch: {_FIX}; {_WHY}"
        ) from error


def _refuse_writes(state: ModelState) -> None:
    written = state.changed()
    if written:
        raise BatchMixingError(
            f"model: its training forward writes {'; '.join(written[:2])}: {_NO_STATISTICS}; "
            "statistics of the private data would be released without noise"
        )
