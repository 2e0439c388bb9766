"""Which failure messages may be shown: Ray's wrapper unwrapped, ANSI stripped, data-bearing messages withheld."""

from __future__ import annotations

import pytest

from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.run.failures import describe_failure, failure_reasons, unwrap
from tunedp.workloads.files import DatasetNotFoundError

ANSI_TRACE = '\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=4242, ip=127.0.0.1)\n  File "x.py", line 1\n'


def _ray_wrapped(cause: BaseException) -> BaseException:
    from ray.exceptions import RayTaskError

    return RayTaskError("ImplicitFunc.train", ANSI_TRACE, cause).as_instanceof_cause()


def test_a_ray_wrapped_config_error_reads_as_its_cause_in_one_clean_line() -> None:
    from tunedp.run.trial import TrialError

    wrapped = _ray_wrapped(TrialError("Expected momentum=1.5 in [0, 1)"))
    assert "RayTaskError" in type(wrapped).__name__  # the shape of Ray's real wrapper
    assert isinstance(unwrap(wrapped), TrialError)
    reason = describe_failure(wrapped)
    assert reason.text == "TrialError: Expected momentum=1.5 in [0, 1)"
    assert reason.data_independent
    assert "\x1b" not in reason.text and "ray::" not in reason.text


@pytest.mark.parametrize(
    "error",
    [
        DatasetNotFoundError("Fashion-MNIST not found: no train-images-idx3-ubyte[.gz] in /x"),
        MemoryError("cannot allocate 3.2 GiB"),
        ModuleNotFoundError("No module named 'sklearn'"),
        TypeError("linear(): argument 'input' must be Tensor, not NoneType"),
    ],
)
def test_data_independent_types_are_shown_with_their_message(error: BaseException) -> None:
    reason = describe_failure(_ray_wrapped(error))
    assert reason.data_independent and reason.text == f"{type(error).__name__}: {error}"


def test_torch_out_of_memory_is_shown() -> None:
    import torch

    reason = describe_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert reason.data_independent and "Tried to allocate 2.00 GiB" in reason.text


@pytest.mark.parametrize(
    "error",
    [
        ValueError("unexpected Adult income label 'SECRET-ROW-42'"),
        RuntimeError("value SECRET-ROW-42 is NaN"),
        KeyError("SECRET-ROW-42"),
    ],
)
def test_messages_that_may_carry_data_are_withheld(error: BaseException) -> None:
    for shown in (error, _ray_wrapped(error)):
        reason = describe_failure(shown)
        assert not reason.data_independent
        assert "SECRET" not in reason.text
        assert reason.text.startswith(type(error).__name__) and "withheld" in reason.text


def _failed(error: BaseException) -> TrialRecord:
    reason = describe_failure(error)
    return TrialRecord(
        point={}, hyperparameters={}, status="failed", error=reason.text, error_public=reason.data_independent
    )


def test_release_best_shows_only_data_independent_reasons_once_each() -> None:
    records = [
        _failed(MemoryError("out of memory")),
        _failed(MemoryError("out of memory")),
        _failed(ValueError("SECRET")),
        TrialRecord(point={}, hyperparameters={}, status="completed", released_scores=(0.5,)),
    ]
    best = failure_reasons(records, disclosure_for("random", "best"))
    assert best == ("MemoryError: out of memory",)  # a set: not which trial, not how many
    every = failure_reasons(records, disclosure_for("random", "all"))
    assert every == ("MemoryError: out of memory", "ValueError (message withheld: it may depend on the private data)")
