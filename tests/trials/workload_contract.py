"""The contract every workload passes: subclass :class:`WorkloadContract` in a ``test_<name>.py``.

A workload's split sizes were used by the accounting before any data was read,
and its model must admit per-example gradients; both are checked here against
the real data files. The only reason to skip is an absent data package, and
the skip message is the one-line install hint of the error.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from trials import DECLARED_SIZES, get_workload
from trials.base import Splits, Workload
from tunedp.datasets import DatasetNotFoundError

SPLITS = ("train", "validation", "test")


def load_or_skip(workload: Workload) -> Splits:
    """The workload's data, or a skip that carries the install command when its package is absent."""
    try:
        return workload.load()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))


class WorkloadContract:
    """Checks shared by all workloads; ``name`` and ``input_shape`` are set by each subclass."""

    name: ClassVar[str]
    input_shape: ClassVar[tuple[int, ...]]

    @pytest.fixture(scope="class")
    @classmethod
    def workload(cls) -> Workload:
        return get_workload(cls.name)

    @pytest.fixture(scope="class")
    @classmethod
    def splits(cls, workload: Workload) -> Splits:
        return load_or_skip(workload)

    def test_declared_sizes_are_loaded(self, workload: Workload, splits: Splits) -> None:
        declared = DECLARED_SIZES[self.name]
        assert workload.dataset == declared["dataset"]
        assert workload.train_size == declared["train"] == len(splits.train)
        assert workload.validation_size == declared["validation"] == len(splits.validation)
        assert workload.test_size == declared["test"] == len(splits.test)

    def test_dtypes_and_shapes(self, splits: Splits) -> None:
        for split_name in SPLITS:
            split = getattr(splits, split_name)
            assert split.inputs.dtype == torch.float32
            assert split.targets.dtype == torch.int64
            assert tuple(split.inputs.shape[1:]) == self.input_shape
            assert split.inputs.shape[0] == split.targets.shape[0]
            assert torch.isfinite(split.inputs).all()

    def test_every_class_in_every_split(self, workload: Workload, splits: Splits) -> None:
        for split_name in SPLITS:
            targets = getattr(splits, split_name).targets
            assert int(targets.min()) == 0 and int(targets.max()) == workload.num_classes - 1
            counts = torch.bincount(targets, minlength=workload.num_classes)
            assert (counts > 0).all(), f"{split_name} misses a class: {counts.tolist()}"

    def test_split_indices_are_disjoint_and_cover_the_rows(self) -> None:
        module = importlib.import_module(f"trials.{self.name}")
        blocks = module.split_indices()
        rows = np.concatenate(list(blocks.values()))
        assert len(np.unique(rows)) == len(rows), "splits overlap"
        assert np.array_equal(np.sort(rows), np.arange(len(rows))), "splits do not cover the file"
        for split_name, indices in blocks.items():
            assert len(indices) == DECLARED_SIZES[self.name][split_name]
            assert np.array_equal(indices, module.split_indices()[split_name]), "split is not fixed"

    def test_loading_twice_gives_identical_tensors(self, workload: Workload, splits: Splits) -> None:
        module = importlib.import_module(f"trials.{self.name}")
        fresh = module.load.__wrapped__()  # bypass the per-process cache
        for split_name in SPLITS:
            assert torch.equal(getattr(fresh, split_name).inputs, getattr(splits, split_name).inputs)
            assert torch.equal(getattr(fresh, split_name).targets, getattr(splits, split_name).targets)

    def test_load_is_cached(self, workload: Workload, splits: Splits) -> None:
        assert workload.load().train.inputs is splits.train.inputs

    def test_models_forward_and_loss(self, workload: Workload, splits: Splits) -> None:
        inputs, targets = splits.validation.inputs[:7], splits.validation.targets[:7]
        for variant in (None, *workload.variants):
            torch.manual_seed(0)
            model = workload.build_model(variant)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            outputs = model(inputs)
            assert outputs.shape == (7, workload.num_classes)
            losses = workload.per_example_loss(outputs, targets)
            assert losses.shape == (7,) and torch.isfinite(losses).all()
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
            workload.per_example_loss(model(inputs[2:3]), targets[2:3]).sum().backward()
            for key, parameter in model.named_parameters():
                assert parameter.grad is not None
                torch.testing.assert_close(per_example[key][2], parameter.grad)

    def test_unknown_variant_is_one_line(self, workload: Workload) -> None:
        with pytest.raises(ValueError, match="no model variant 'nope'; known: ") as error:
            workload.build_model("nope")
        assert "\n" not in str(error.value)

    def test_evaluate_restores_training_mode(self, workload: Workload, splits: Splits) -> None:
        model = workload.build_model()
        model.train()
        score = workload.evaluate(model, splits.validation, batch_size=1000)
        assert model.training and 0.0 <= score <= 1.0
