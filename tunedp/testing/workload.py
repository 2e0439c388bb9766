"""The workload contract: subclass :class:`WorkloadContract` to check a workload's declaration against its data.

A workload's declared sizes were used by the accounting before any data was
read, and its models must admit per-example gradients (DP-SGD clips each
example's gradient); both are checked here against the workload's real data::

    # tests/test_my_workload.py
    from tunedp.testing import WorkloadContract

    class TestMyWorkload(WorkloadContract):
        reference = "my_pkg.workload:WORKLOAD"   # what the config's ``workload:`` says

Every built-in workload passes these tests (``tests/integration/workloads/``). The only
reason a test skips is an absent data package (:class:`tunedp.workloads.files.DatasetNotFoundError`),
with the one-line install hint as the message. Imports pytest and torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from tunedp.workloads.contract import Splits, Workload
from tunedp.workloads.files import DatasetNotFoundError
from tunedp.workloads.registry import WorkloadReference, resolve_workload

__all__ = ["WorkloadContract", "load_or_skip"]

SPLITS = ("train", "validation", "test")


def load_or_skip(workload: Workload) -> Splits:
    """The workload's data, or a skip that carries the install command when its package is absent."""
    try:
        return workload.load()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))


class WorkloadContract:
    """Checks every workload passes. Set ``reference`` (a built-in name, an entry point, an import path).

    ``declaration_is_torch_free``: resolving the declaration must not import
    torch, so ``tunedp plan`` stays instant (name the torch parts as
    ``"module:function"`` strings). Set it to False to waive that check.
    """

    reference: ClassVar[WorkloadReference]
    declaration_is_torch_free: ClassVar[bool] = True

    @pytest.fixture(scope="class")
    @classmethod
    def workload(cls) -> Workload:
        return resolve_workload(cls.reference)

    @pytest.fixture(scope="class")
    @classmethod
    def splits(cls, workload: Workload) -> Splits:
        return load_or_skip(workload)

    def test_declaration_resolves_without_torch(self) -> None:
        if not self.declaration_is_torch_free:
            pytest.skip("torch-free declaration waived")
        reference = self.reference
        rebuilt = (
            f"CsvWorkloadSpec.model_validate_json({reference.model_dump_json()!r})"
            if not isinstance(reference, str)
            else repr(reference)
        )
        code = (
            "import sys, json\nfrom tunedp.workloads import CsvWorkloadSpec, resolve_workload\n"
            f"w = resolve_workload({rebuilt})\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'train': w.sizes.train}))"
        )
        # The child sees what this process sees (a test may have put the workload's folder on sys.path).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert not result["torch"], "resolving the declaration imported torch; name torch parts as 'module:function'"

    def test_declaration_is_consistent(self, workload: Workload) -> None:
        sizes = workload.sizes
        assert sizes.dataset and min(sizes.train, sizes.validation, sizes.test) >= 1 and sizes.classes >= 2
        assert sizes.protected == sizes.train + sizes.validation
        assert workload.validation_source in ("protected", "public")
        assert workload.test_source in ("protected", "public")
        assert workload.default_variant == workload.variants[0]

    def test_declared_data_files_are_located_without_reading_them(self, workload: Workload) -> None:
        """``data_files`` (if declared) names existing files; a public workload says where its data comes from.

        The pre-flight and the public-proxy check rely on these declarations
        (docs/architecture.md §4.4); the files are located, not read.
        """
        if workload.public_source is not None:
            assert workload.public_source.strip(), "public_source must say where the public data comes from"
            assert workload.validation_source == "public", "a public workload's validation rows are public too"
        if workload.data_files is None:
            return
        try:
            files = workload.data_files()
        except FileNotFoundError as error:
            assert str(error) and "\n" not in str(error), "a missing file is one line saying how to install it"
            pytest.skip(f"data not installed here: {error}")
        assert files and all(Path(path).is_file() for path in files), files

    def test_declared_raw_input_is_preprocessed_per_example_into_the_input_shape(self, workload: Workload) -> None:
        """A declared raw input (``raw_input_shape``/``raw_input_range``/``preprocess``) is what the released
        model takes: ``preprocess`` must map raw examples to ``input_shape``, finite float32, one example at a
        time (an example's output does not depend on the batch beside it). Data-free: all-zero, mid-range and
        top-of-range examples, never a row of the data."""
        if workload.raw_input_shape is None or workload.raw_input_range is None:
            return  # the released model takes the network's own input
        low, high = workload.raw_input_range
        fills = (0.0 if low <= 0.0 <= high else low, (low + high) / 2, high)
        alone = [workload.preprocessed(torch.full((1, *workload.raw_input_shape), fill)) for fill in fills]
        for inputs in alone:
            assert tuple(inputs.shape) == (1, *workload.input_shape)
            assert inputs.dtype == torch.float32 and torch.isfinite(inputs).all()
        together = workload.preprocessed(torch.stack([torch.full(workload.raw_input_shape, f) for f in fills]))
        torch.testing.assert_close(together, torch.cat(alone), msg="preprocess mixes the examples of a batch")

    def test_declared_sizes_and_shapes_are_loaded(self, workload: Workload, splits: Splits) -> None:
        for split_name in SPLITS:
            split = getattr(splits, split_name)
            assert len(split) == getattr(workload.sizes, split_name), split_name
            assert split.inputs.dtype == torch.float32 and split.targets.dtype == torch.int64
            assert tuple(split.inputs.shape[1:]) == workload.input_shape
            assert split.inputs.shape[0] == split.targets.shape[0]
            assert torch.isfinite(split.inputs).all(), f"{split_name} has non-finite inputs"

    def test_labels_are_class_indices_and_train_has_every_class(self, workload: Workload, splits: Splits) -> None:
        for split_name in SPLITS:
            targets = getattr(splits, split_name).targets
            assert int(targets.min()) >= 0 and int(targets.max()) < workload.sizes.classes, split_name
        counts = torch.bincount(splits.train.targets, minlength=workload.sizes.classes)
        assert (counts > 0).all(), f"train misses a class: {counts.tolist()}"

    def test_loading_again_gives_identical_tensors(self, workload: Workload, splits: Splits) -> None:
        """The splits are a fixed function of the data (no run-time randomness, no data-dependent order)."""
        loader = workload.loader
        if isinstance(loader, str):
            module, _, attribute = loader.partition(":")
            loader = getattr(__import__(module, fromlist=[attribute]), attribute)
        fresh_loader = getattr(loader, "__wrapped__", loader)  # bypass a per-process cache when there is one
        fresh = workload.check(fresh_loader())
        for split_name in SPLITS:
            assert torch.equal(getattr(fresh, split_name).inputs, getattr(splits, split_name).inputs)
            assert torch.equal(getattr(fresh, split_name).targets, getattr(splits, split_name).targets)

    def test_load_is_cached(self, workload: Workload, splits: Splits) -> None:
        """Every trial a worker runs calls ``load``: it must not re-read the files each time."""
        assert workload.load().train.inputs is splits.train.inputs

    def test_models_forward_and_loss(self, workload: Workload, splits: Splits) -> None:
        inputs, targets = splits.validation.inputs[:7], splits.validation.targets[:7]
        for variant in (None, *workload.variants):
            torch.manual_seed(0)
            model = workload.build_model(variant)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()), (
                "BatchNorm mixes examples: per-example gradients are undefined for it"
            )
            outputs = model(inputs)
            assert outputs.shape == (len(targets), workload.sizes.classes)
            losses = workload.per_example_loss(outputs, targets)
            assert losses.shape == (len(targets),) and torch.isfinite(losses).all()
            assert 0 <= workload.correct(outputs, targets) <= len(targets)
            assert 0.0 <= workload.metric(outputs, targets) <= 1.0

    def test_models_admit_per_example_gradients(self, workload: Workload, splits: Splits) -> None:
        """What DP-SGD does: vmap(grad) over single examples must match the per-example autograd."""
        inputs, targets = splits.train.inputs[:4], splits.train.targets[:4]
        for variant in workload.variants:
            torch.manual_seed(1)
            model = workload.build_model(variant)
            params = {k: v.detach() for k, v in model.named_parameters()}

            def loss_one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                out = functional_call(model, p, (x.unsqueeze(0),))  # noqa: B023
                return workload.per_example_loss(out, y.unsqueeze(0)).sum()

            per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, inputs, targets)
            model.zero_grad()
            workload.per_example_loss(model(inputs[2:3]), targets[2:3]).sum().backward()  # type: ignore[no-untyped-call]
            for key, parameter in model.named_parameters():
                assert parameter.grad is not None
                torch.testing.assert_close(per_example[key][2], parameter.grad)

    def test_unknown_variant_is_one_line(self, workload: Workload) -> None:
        with pytest.raises(ValueError, match="no model variant 'no-such-variant'; known: ") as error:
            workload.build_model("no-such-variant")
        assert "\n" not in str(error.value)

    def test_evaluate_restores_training_mode(self, workload: Workload, splits: Splits) -> None:
        model = workload.build_model()
        model.train()
        score = workload.evaluate(model, splits.validation, batch_size=1000)
        assert model.training and 0.0 <= score <= 1.0
