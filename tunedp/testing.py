"""Contract tests: subclass :class:`WorkloadContract` (a workload) or :class:`LedgerContract` (a ledger backend).

A workload's declared sizes were used by the accounting before any data was
read, and its models must admit per-example gradients (DP-SGD clips each
example's gradient); both are checked here against the workload's real data::

    # tests/test_my_workload.py
    from tunedp.testing import WorkloadContract

    class TestMyWorkload(WorkloadContract):
        reference = "my_pkg.workload:WORKLOAD"   # what the config's ``workload:`` says

Every built-in workload passes these tests (``tests/workloads/``). The only
reason a test skips is an absent data package (:class:`tunedp.workloads.files.DatasetNotFoundError`),
with the one-line install hint as the message. Importing this module imports
pytest and torch; tunedp itself never imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest
import torch
from dp_accounting import dp_event
from torch import nn
from torch.func import functional_call, grad, vmap

from tunedp.workloads.contract import Splits, Workload
from tunedp.workloads.files import DatasetNotFoundError
from tunedp.workloads.registry import WorkloadReference, resolve_workload

if TYPE_CHECKING:
    from tunedp.ledger import Ledger

__all__ = ["LedgerContract", "WorkloadContract", "load_or_skip"]

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


# ---------------------------------------------------------------------------------------------- ledgers


class LedgerContract:
    """What every ledger backend must do (the sqlite file and the PostgreSQL server both pass it).

    A subclass provides three things:

    * ``make_ledger``: a fixture returning ``factory(epsilon, delta, fingerprint_of=None) -> Ledger``,
      a new, empty budget of a fresh dataset each call, opened as the role that charges it;
    * :meth:`stored_rows`: every column of every stored row about the ledger's dataset, read
      straight from the storage (not through the ledger), as dicts;
    * :meth:`location`: what another process passes to :func:`tunedp.ledger.open_ledger`
      (with its credentials) to charge the same budget.

    Every ε is checked against an independent recomposition with dp_accounting.
    """

    delta: ClassVar[float] = 1e-5

    @pytest.fixture
    def make_ledger(self) -> Callable[..., Ledger]:
        raise NotImplementedError("subclasses provide the make_ledger fixture")

    def stored_rows(self, ledger: Ledger) -> list[dict[str, object]]:
        raise NotImplementedError

    def location(self, ledger: Ledger) -> str:
        raise NotImplementedError

    def owner_location(self, ledger: Ledger) -> str:
        """Where the budget's creator opens the ledger (a team's owner role); by default :meth:`location`."""
        return self.location(ledger)

    # ------------------------------------------------------------------ helpers

    def _composed(self, events: list[dp_event.DpEvent]) -> float:
        from tunedp.accounting.epsilon import rdp_epsilon

        return 0.0 if not events else rdp_epsilon(dp_event.ComposedDpEvent(events), self.delta)

    # ------------------------------------------------------------------ the budget

    def test_no_sequence_of_charges_exceeds_the_global_budget(self, make_ledger: Callable[..., Ledger]) -> None:
        """Admitted iff the recomposition of everything charged plus the new event fits; refused changes nothing."""
        from tunedp.errors import BudgetExceededError

        ledger = make_ledger(2.5)
        admitted: list[dp_event.DpEvent] = []
        for sigma, count in [(4.0, 2), (0.9, 1), (2.5, 3), (6.0, 5), (1.5, 1), (9.0, 1), (12.0, 4)]:
            event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), count)
            would_spend = self._composed([*admitted, event])
            before = [c.search_id for c in ledger.charges()]
            try:
                charge = ledger.charge(event, config_hash="h", mode="grid")
            except BudgetExceededError as error:
                assert would_spend > ledger.epsilon and "\n" not in str(error) and "budget" in str(error)
                assert [c.search_id for c in ledger.charges()] == before
            else:
                assert would_spend <= ledger.epsilon
                assert charge.epsilon == pytest.approx(self._composed([event]), rel=1e-9)
                admitted.append(event)
            assert ledger.spent_epsilon() == pytest.approx(self._composed(admitted), rel=1e-12)
            assert ledger.spent_epsilon() <= ledger.epsilon
        assert [c.event for c in ledger.charges()] == admitted
        assert 2 <= len(admitted) < 7  # the sequence exercised both outcomes

    def test_admissible_is_a_dry_run_of_charge(self, make_ledger: Callable[..., Ledger]) -> None:
        ledger = make_ledger(3.0)
        cheap, dear = dp_event.GaussianDpEvent(3.0), dp_event.GaussianDpEvent(0.5)
        rows = self.stored_rows(ledger)
        fits, after = ledger.admissible(cheap)
        assert fits and after == pytest.approx(self._composed([cheap]))
        fits, after = ledger.admissible(dear)
        assert not fits and after == pytest.approx(self._composed([dear]))
        assert self.stored_rows(ledger) == rows

    def test_set_status_never_changes_what_was_spent(self, make_ledger: Callable[..., Ledger]) -> None:
        from tunedp.errors import LedgerError

        ledger = make_ledger(5.0)
        charge = ledger.charge(dp_event.GaussianDpEvent(2.0), config_hash="h", mode="random/best")
        spent = ledger.spent_epsilon()
        for status in ("running", "failed", "interrupted", "completed"):
            ledger.set_status(charge.search_id, status, at="2026-12-06T21:57:42+00:00")
            assert [c.status for c in ledger.charges()] == [status]
            assert ledger.spent_epsilon() == spent
        with pytest.raises(ValueError, match="status"):
            ledger.set_status(charge.search_id, "refunded")
        with pytest.raises(LedgerError, match="no charge"):
            ledger.set_status("no-such-search", "completed")
        assert ledger.spent_epsilon() == spent

    def test_charging_the_same_search_id_twice_is_refused(self, make_ledger: Callable[..., Ledger]) -> None:
        from tunedp.errors import LedgerCorruptError, LedgerError

        ledger = make_ledger(50.0)
        charge = ledger.charge(dp_event.GaussianDpEvent(5.0), config_hash="h", mode="grid")
        with pytest.raises(LedgerError, match="already charged") as caught:
            ledger.charge(dp_event.GaussianDpEvent(50.0), config_hash="h", mode="grid", search_id=charge.search_id)
        assert not isinstance(caught.value, LedgerCorruptError) and "\n" not in str(caught.value)
        assert len(ledger.charges()) == 1

    def test_event_outside_the_whitelist_is_refused_before_anything_is_written(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        ledger = make_ledger(5.0)
        rows = self.stored_rows(ledger)
        for event in (dp_event.LaplaceDpEvent(1.0), dp_event.ComposedDpEvent([])):
            with pytest.raises(ValueError):
                ledger.charge(event, config_hash="h", mode="grid")
        assert self.stored_rows(ledger) == rows

    def test_a_budget_cannot_be_created_twice(self, make_ledger: Callable[..., Ledger]) -> None:
        from tunedp.errors import LedgerError
        from tunedp.ledger import create_ledger_at, parse_location

        ledger = make_ledger(1.0)
        with pytest.raises(LedgerError, match="already") as caught:
            create_ledger_at(
                parse_location(self.owner_location(ledger)), dataset=ledger.dataset, epsilon=100.0, delta=1e-5
            )
        assert "\n" not in str(caught.value)
        from tunedp.ledger import open_ledger

        assert open_ledger(self.location(ledger), dataset=ledger.dataset).epsilon == 1.0

    # ------------------------------------------------------------------ the data binding

    def test_a_bound_ledger_charges_only_the_rows_it_protects(self, make_ledger: Callable[..., Ledger]) -> None:
        import hashlib
        import hmac

        from tunedp.errors import DataMismatchError

        def rows(data: bytes) -> Callable[[bytes], str]:
            return lambda key: "hmac-sha256/v1:" + hmac.new(key, data, hashlib.sha256).hexdigest()

        ledger = make_ledger(5.0, fingerprint_of=rows(b"the protected rows"))
        assert ledger.bound and ledger.fingerprint.startswith("hmac-sha256/v1:")
        with pytest.raises(DataMismatchError, match="fingerprint mismatch") as caught:
            ledger.verify_data(rows(b"other rows"))
        assert "\n" not in str(caught.value)
        ledger.verify_data(rows(b"the protected rows"))
        ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="grid")
        assert len(ledger.charges()) == 1
        # The fingerprint is keyed: a plain hash of the same rows is not it.
        assert hashlib.sha256(b"the protected rows").hexdigest() not in ledger.fingerprint

    # ------------------------------------------------------------------ what a ledger publishes

    def test_every_time_a_ledger_records_is_the_utc_day(self, make_ledger: Callable[..., Ledger]) -> None:
        """A charge's time and the search's end would give its duration, which grows with the secret K."""
        import hashlib
        import hmac

        ledger = make_ledger(9.0, fingerprint_of=lambda key: hmac.new(key, b"r", hashlib.sha256).hexdigest())
        ledger.verify_data(lambda key: hmac.new(key, b"r", hashlib.sha256).hexdigest())
        charge = ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="random/best")
        ledger.set_status(charge.search_id, "running", at="2026-12-06T21:57:42+00:00")
        ledger.set_status(charge.search_id, "completed")
        rows = self.stored_rows(ledger)
        assert rows, "stored_rows must return the stored rows"
        assert any(charge.search_id in map(str, row.values()) for row in rows)
        for row in rows:
            for column, value in row.items():
                assert not _finer_than_a_day(value), f"{column}={value!r} records a time finer than the UTC day"
        assert all(_finer_than_a_day(v) is False for v in (charge.created_at, ledger.charges()[0].created_at))
        assert len(charge.created_at) == len("2026-12-06")

    # ------------------------------------------------------------------ real processes

    def test_eight_processes_racing_for_a_budget_that_admits_three(self, make_ledger: Callable[..., Ledger]) -> None:
        """Three commit, five are refused; the composition of what committed is within the cap."""
        import tempfile
        from pathlib import Path

        release = dp_event.GaussianDpEvent(4.0)
        three, four = self._composed([release] * 3), self._composed([release] * 4)
        ledger = make_ledger((three + four) / 2)
        with tempfile.TemporaryDirectory() as folder:
            go = Path(folder) / "go"
            children = [
                subprocess.Popen(
                    [sys.executable, "-c", _RACE_CHILD, self.location(ledger), ledger.dataset, folder, str(i)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(8)
            ]
            try:
                deadline = time.monotonic() + 180
                while len(list(Path(folder).glob("ready-*"))) < 8:
                    if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                        pytest.fail(f"children did not reach the barrier: {[c.communicate() for c in children]}")
                    time.sleep(0.01)
                go.touch()
                outputs = [c.communicate(timeout=180) for c in children]
            finally:
                for child in children:
                    if child.poll() is None:
                        child.kill()
        results = sorted(out.strip() for out, _ in outputs)
        assert results == ["admitted"] * 3 + ["refused"] * 5, outputs
        assert len(ledger.charges()) == 3
        assert ledger.spent_epsilon() == pytest.approx(three) and three <= ledger.epsilon


#: A driver's charge in a separate process: open the ledger, wait at a file barrier, charge, say what happened.
_RACE_CHILD = """
import sys, time
from pathlib import Path
from dp_accounting import dp_event
from tunedp.errors import BudgetExceededError
from tunedp.ledger import open_ledger
location, dataset, folder, index = sys.argv[1:5]
ledger = open_ledger(location, dataset=dataset)
(Path(folder) / f"ready-{index}").touch()
while not (Path(folder) / "go").exists():
    time.sleep(0.0005)
try:
    ledger.charge(dp_event.GaussianDpEvent(4.0), config_hash="race", mode="grid", label=f"racer {index}")
except BudgetExceededError:
    print("refused")
else:
    print("admitted")
"""


def _finer_than_a_day(value: object) -> bool:
    """Whether ``value`` records a moment finer than a day: a datetime, an ISO time, an epoch in s or ms."""
    import datetime as dt
    import re

    if isinstance(value, dt.datetime | dt.time):
        return True
    if isinstance(value, str):
        return (
            re.search(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", value) is not None
            or re.fullmatch(r"\d\d:\d\d(:\d\d)?", value) is not None
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        now = time.time()
        return any(abs(value - now * scale) < 400 * 86400 * scale for scale in (1, 1000))
    return False
