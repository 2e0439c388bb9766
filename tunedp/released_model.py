"""The released model as a callable network, with an input example that carries no data.

The search releases one state dict (``best_model.pt``); tracking turns it into
an MLflow PyTorch model so that ``mlflow models serve`` and the Model Registry
work. Both need a network object and an input example. The example is
everything-zero input of the workload's per-example shape: a row of the
protected data would be published with the model, and even a "public" test
row of digits comes from the same collection (issue 10 §6), so no real row is
used. The signature is inferred from the example and the model's output on
it — a function of the released model alone.

Imports torch (lazily through the workload registry); MLflow stays in
:mod:`tunedp.tracking`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads import WorkloadReference

__all__ = ["ReleasedModel", "load_released_model"]


@dataclass(frozen=True, kw_only=True)
class ReleasedModel:
    """The released network (eval mode, CPU), a data-free input example and the model's output on it."""

    model: nn.Module
    input_example: npt.NDArray[np.float32]
    output_example: npt.NDArray[np.float32]


def load_released_model(workload: WorkloadReference, variant: str | None, model_file: Path) -> ReleasedModel:
    """Rebuild ``workload``'s network (``variant``) with the weights in ``model_file``.

    The input example's shape is the workload's declared ``input_shape`` (no data is loaded).
    """
    from tunedp.workloads import resolve_workload

    declared = resolve_workload(workload)
    model = declared.build_model(variant)
    model.load_state_dict(torch.load(model_file, map_location="cpu", weights_only=True))
    model.eval()
    example = np.zeros((1, *declared.input_shape), dtype=np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy().astype(np.float32)
    return ReleasedModel(model=model, input_example=example, output_example=output)
