"""The released model as an MLflow pyfunc: raw rows in, a label and each class's probability out.

The released model is logged at ``runs:/<run id>/model`` on the search's
parent run (:func:`log_released_model`): a "models from code" pyfunc whose
code is a three-line script importing :class:`ReleasedPyfunc` from tunedp,
which ships in the model's ``code/``. Nothing is pickled, so loading it runs
no stored object. Everything that matters is :class:`tunedp.release.model.ReleasedModel`
(the declared encoding, the network, the labels); this module only adapts it
to MLflow, and gives the model the search's public time
(:mod:`tunedp.observe.mlflow_times`), not a server's clock at the search's end.

Loads MLflow (the pyfunc base class); torch and pandas only when a model is saved or used.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlflow.models.signature import _TypeHints
from mlflow.pyfunc.model import PythonModel

from tunedp.observe.mlflow_records import MODEL_NAME
from tunedp.observe.mlflow_store import environment, quiet_mlflow_logs
from tunedp.observe.mlflow_times import public_text
from tunedp.release.disclosure import disclosure_for

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from tunedp.observe.protocol import SearchOutcome
    from tunedp.release.model import ReleasedModel

__all__ = ["PYFUNC_SCRIPT", "ReleasedPyfunc", "log_released_model", "pyfunc_signature"]


class ReleasedPyfunc(PythonModel):
    """The released model for MLflow: raw rows in (the input schema), ``label`` and ``probability_<class>`` out.

    A thin adapter: everything that matters is :class:`tunedp.release.model.ReleasedModel`,
    rebuilt from the model's ``recipe.json`` and state dict (no pickle).
    """

    def load_context(self, context: Any) -> None:
        from tunedp.release.model import ReleasedModel

        self._model = ReleasedModel.from_recipe(Path(context.artifacts["recipe"]), Path(context.artifacts["weights"]))

    #: MLflow reads ``predict``'s type hints as an input schema and warns about ``Any`` (at every
    #: import, and again at every save, through a filter of its own that no caller can override);
    #: the model's signature is the one :func:`pyfunc_signature` gives, so MLflow is told of no hints.
    _skip_type_hint_validation = True
    _predict_type_hints = _TypeHints()  # type: ignore[no-untyped-call]

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        from tunedp.release.model import TableInput

        model = self._model
        if isinstance(model.raw_input, TableInput):
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            rows: Any = {name: frame[name].tolist() for name in model.raw_input.names if name in frame.columns}
        else:  # an array: raw images (range-checked and preprocessed by the model), else the network's input
            rows = np.asarray(model_input)
        return pd.DataFrame(model.predict(rows).columns())


#: The "models from code" script MLflow runs to build the pyfunc (saved as the model's code).
PYFUNC_SCRIPT = "tunedp_model.py"
_PYFUNC_CODE = """\
# The released tunedp model: raw rows in, label and class probabilities out (tunedp ships in code/).
import mlflow.models

from tunedp.observe.mlflow_model import ReleasedPyfunc

mlflow.models.set_model(ReleasedPyfunc())
"""


def pyfunc_signature(released: ReleasedModel) -> Any:
    """The raw columns by name (or the raw image tensor) in; ``label`` and ``probability_<class>`` out.

    An image workload's input is its raw images, float32 ``(-1, 28, 28)`` of
    pixels 0..255 as stored (digits: ``(-1, 8, 8)``, 0..16): MLflow holds a
    tensor input to its declared dtype and rank, so a caller passes
    ``images.astype("float32")``; the model preprocesses them itself.

    The columns are typed ``Any``: MLflow refuses to convert a 64-bit integer
    column to ``double`` (``pandas.read_csv`` reads ``age`` as int64) and any
    number to ``string`` (a category coded ``1``), while the encoding reads
    each cell as the training did, as text, and refuses a bad value itself.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec
    from mlflow.types.schema import AnyType

    from tunedp.release.model import LABEL_COLUMN, TableInput, probability_column

    raw = released.raw_input
    inputs: Schema
    if isinstance(raw, TableInput):
        inputs = Schema([ColSpec(AnyType(), c.name) for c in raw.columns])  # type: ignore[no-untyped-call]
    else:
        inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *raw.shape))])
    outputs = Schema(
        [
            ColSpec(DataType.string, LABEL_COLUMN),
            *(ColSpec(DataType.double, probability_column(name)) for name in released.classes),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_released_model(client: MlflowClient, run_id: str, outcome: SearchOutcome) -> None:
    """The released model as an MLflow pyfunc for raw rows (:class:`ReleasedPyfunc`) on the parent run.

    Only the selected model is logged — under ``release: best`` it is the
    one thing released, and nothing about the other trials goes with it.
    Its input schema is the raw columns (or the image array), its output
    a label and each class's probability; the workload's declared
    encoding travels in ``recipe.json``, the weights as the state dict.
    Saved as "models from code" (a three-line script importing tunedp,
    which ships in the model's ``code/``): nothing is pickled, so loading
    it executes no stored object and MLflow has no pickle warning to give.
    Requirements are pinned here rather than inferred (inference loads the
    model in a subprocess: slow, and nothing it could add).
    """
    import mlflow.pyfunc
    import torch
    from mlflow.models import Model

    import tunedp
    from tunedp.release.model import ReleasedModel

    config = outcome.plan.config
    best = outcome.report.best
    variant = best.variant if best is not None and best.variant is not None else config.model
    released = ReleasedModel.load(config.workload, variant, outcome.output_dir / "best_model.pt")
    rule = disclosure_for(outcome.plan.shape.mode, outcome.plan.shape.release)
    # Saved here and logged as the run's artifacts, not as an MLflow LoggedModel: a
    # LoggedModel's creation and update times are stamped by the tracking server's clock
    # as the search ends, which no client can set, and under ``release: best`` an end time
    # records the duration (so K). MLmodel's own time is the public one.
    described = Model(run_id=run_id, artifact_path=MODEL_NAME, utc_time_created=public_text(rule))
    with (
        tempfile.TemporaryDirectory(prefix="tunedp-model-") as folder,
        quiet_mlflow_logs(logging.ERROR),
        environment(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),  # a bar per file copied into the model
    ):
        scratch = Path(folder)
        (scratch / "recipe.json").write_text(json.dumps(released.recipe(), indent=2) + "\n", encoding="utf-8")
        (scratch / PYFUNC_SCRIPT).write_text(_PYFUNC_CODE, encoding="utf-8")
        mlflow.pyfunc.save_model(
            scratch / MODEL_NAME,
            python_model=str(scratch / PYFUNC_SCRIPT),
            artifacts={
                "recipe": str(scratch / "recipe.json"),
                "weights": str(outcome.output_dir / "best_model.pt"),
            },
            mlflow_model=described,
            signature=pyfunc_signature(released),
            input_example=released.input_example(),
            # The model's code is tunedp's: ship the package so serving needs no install.
            code_paths=[str(Path(tunedp.__file__).parent)],
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"numpy=={np.__version__}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
        rule.settle(scratch / MODEL_NAME)  # a local artifact store copies the files' times with them
        client.log_artifacts(run_id, str(scratch / MODEL_NAME), artifact_path=MODEL_NAME)
