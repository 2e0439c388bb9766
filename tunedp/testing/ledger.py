"""The ledger contract: subclass :class:`LedgerContract` to check a ledger backend (sqlite and PostgreSQL pass it).

Every ε is recomposed independently with dp_accounting; the budget is
checked under concurrent charges from separate processes; every time a
ledger records is the UTC day (docs/architecture.md §4.1). Imports pytest
and dp_accounting, not torch.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import pytest
from dp_accounting import dp_event

if TYPE_CHECKING:
    from tunedp.ledger import Ledger

__all__ = ["LedgerContract"]


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
