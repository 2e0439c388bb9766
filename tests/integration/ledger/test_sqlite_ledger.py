"""The privacy ledger: never overspent, durable once charged, and distrustful of its own file.

Everything here runs against real sqlite files; the concurrency and crash
tests use real OS processes (``ledger_child.py``), a file-based barrier so
both charge at the same moment, and a real SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.ledger.sqlite import (
    BudgetExceededError,
    LedgerCorruptError,
    LedgerError,
    LedgerMissingError,
    PrivacyLedger,
    default_ledger_path,
)

DELTA = 1e-5
CHILD = Path(__file__).with_name("ledger_child.py")
REPO = Path(__file__).resolve().parents[3]


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _composed(events: list[dp_event.DpEvent]) -> float:
    """Independent recomputation of what the ledger should have spent."""
    return 0.0 if not events else rdp_epsilon(dp_event.ComposedDpEvent(events), DELTA)


def _sql(path: Path, statement: str, parameters: tuple[object, ...] = ()) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- budget never exceeded


_charges = st.lists(st.tuples(st.floats(min_value=0.8, max_value=20.0), st.integers(1, 5)), min_size=1, max_size=6)


@settings(max_examples=20, deadline=None)
@given(global_epsilon=st.floats(min_value=0.5, max_value=6.0), charges=_charges)
def test_no_sequence_of_charges_exceeds_the_global_budget(
    global_epsilon: float, charges: list[tuple[float, int]]
) -> None:
    """After every admitted charge spent ≤ global; a refused one leaves the file byte-identical.

    Each decision is also checked against an independent recomposition: admitted
    iff the composition of everything charged plus the new event fits.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "d.sqlite"
        ledger = PrivacyLedger.create(path, dataset="d", epsilon=global_epsilon, delta=DELTA)
        admitted: list[dp_event.DpEvent] = []
        for sigma, count in charges:
            event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), count)
            would_spend = _composed([*admitted, event])
            before = _bytes(path)
            try:
                ledger.charge(event, config_hash="h", mode="grid")
            except BudgetExceededError as error:
                assert would_spend > global_epsilon
                assert _bytes(path) == before
                assert "budget" in _one_line(error)
            else:
                assert would_spend <= global_epsilon
                admitted.append(event)
            spent = ledger.spent_epsilon()
            assert spent <= global_epsilon
            assert spent == pytest.approx(_composed(admitted), rel=1e-12)
            assert [c.event for c in ledger.charges()] == admitted


def test_admissible_is_a_dry_run_of_charge(ledger_path: Path) -> None:
    ledger = PrivacyLedger.create(ledger_path, dataset="fashion_mnist", epsilon=3.0, delta=DELTA)
    cheap, dear = dp_event.GaussianDpEvent(3.0), dp_event.GaussianDpEvent(0.5)
    before = _bytes(ledger_path)
    fits, after = ledger.admissible(cheap)
    assert fits
    assert after == pytest.approx(rdp_epsilon(cheap, DELTA))
    fits, after = ledger.admissible(dear)
    assert not fits
    assert after == pytest.approx(rdp_epsilon(dear, DELTA))
    assert _bytes(ledger_path) == before


# ----------------------------------------------------------------------------- real processes


# Already charged before the race: slow to price (~0.3 s), so each child's
# read-compose-insert is long and the two are sure to overlap in time.
_SLOW_TO_PRICE = dp_event.ComposedDpEvent(
    [
        dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(s)), 100)
        for s in (6.0, 6.5, 7.0, 7.5)
    ]
)


def _race_ledger(path: Path) -> tuple[float, float]:
    """A ledger whose remaining budget admits one more Gaussian(σ=2) release but not two."""
    release = dp_event.GaussianDpEvent(2.0)
    one = _composed([_SLOW_TO_PRICE, release])
    two = _composed([_SLOW_TO_PRICE, release, release])
    budget = (one + two) / 2
    assert one <= budget < two
    ledger = PrivacyLedger.create(path, dataset="race", epsilon=budget, delta=DELTA)
    ledger.charge(_SLOW_TO_PRICE, config_hash="before", mode="grid")
    return one, budget


def test_two_processes_charging_at_once_cannot_both_spend_the_last_of_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite"
    one, budget = _race_ledger(path)
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{i}" for i in range(2)]
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "race", str(path), "2.0", str(ready), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    try:
        # Barrier: release both only once both have opened the ledger and are spinning.
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in readies):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                pytest.fail(f"children did not reach the barrier: {[c.communicate() for c in children]}")
            time.sleep(0.001)
        go.touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    results = sorted(out.strip() for out, _ in outputs)
    assert results == ["admitted", "refused"], outputs
    assert all(c.returncode == 0 for c in children)
    ledger = PrivacyLedger.open(path)
    assert len(ledger.charges()) == 2
    assert ledger.spent_epsilon() == pytest.approx(one)
    assert ledger.spent_epsilon() <= budget


def test_charge_survives_sigkill_right_after_commit_even_while_the_killed_process_held_the_lock(
    tmp_path: Path,
) -> None:
    """Committed means charged: a killed driver cannot un-spend, nor leave the ledger locked.

    The child commits a charge, then opens a write transaction that inserts a
    forged row and is killed holding sqlite's write lock. Afterwards the
    charge is there, the forged row is not, and the ledger takes new charges.
    """
    path = tmp_path / "crash.sqlite"
    PrivacyLedger.create(path, dataset="crash", epsilon=10.0, delta=DELTA)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "commit-then-hang", str(path), "2.0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "committed"
        assert child.stdout.readline().strip() == "locked"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    ledger = PrivacyLedger.open(path)
    charges = ledger.charges()
    assert [c.label for c in charges] == ["killed after commit"]
    assert charges[0].status == "charged"
    assert ledger.spent_epsilon() == pytest.approx(rdp_epsilon(dp_event.GaussianDpEvent(2.0), DELTA))
    ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="after", mode="grid")
    assert len(ledger.charges()) == 2


# ----------------------------------------------------------------------------- tampering


@pytest.fixture
def charged(ledger_path: Path) -> PrivacyLedger:
    ledger = PrivacyLedger.create(ledger_path, dataset="fashion_mnist", epsilon=5.0, delta=DELTA)
    ledger.charge(
        dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(1.0)), 500),
        config_hash="h",
        mode="random",
    )
    return ledger


def _assert_refuses_everything(ledger: PrivacyLedger, match: str) -> None:
    for operation in (
        ledger.charges,
        ledger.spent_epsilon,
        lambda: ledger.admissible(dp_event.GaussianDpEvent(50.0)),
        lambda: ledger.charge(dp_event.GaussianDpEvent(50.0), config_hash="h", mode="grid"),
    ):
        with pytest.raises(LedgerCorruptError, match=match) as caught:
            operation()
        _one_line(caught.value)


def test_hand_edited_event_row_is_refused(charged: PrivacyLedger) -> None:
    """Raising σ in the stored JSON would make the past look cheaper; the checksum catches it."""
    _sql(charged.path, "UPDATE charges SET event_json = replace(event_json, '1.0', '100.0')")
    _assert_refuses_everything(charged, "edited outside tunedp")


def test_event_row_rewritten_with_matching_checksum_still_goes_through_the_whitelist(
    charged: PrivacyLedger,
) -> None:
    forged = json.dumps({"kind": "laplace", "parameter": 1.0})
    _sql(charged.path, "UPDATE charges SET event_json = ?, event_sha256 = ?", (forged, _sha256(forged)))
    _assert_refuses_everything(charged, "invalid")


def test_event_row_nested_beyond_any_parser_is_refused_cleanly(charged: PrivacyLedger) -> None:
    forged = "[" * 100_000 + "]" * 100_000
    _sql(charged.path, "UPDATE charges SET event_json = ?, event_sha256 = ?", (forged, _sha256(forged)))
    _assert_refuses_everything(charged, "invalid")


def test_stored_epsilon_column_is_display_only(charged: PrivacyLedger) -> None:
    """Admission recomputes from events; zeroing the per-charge ε figure changes nothing."""
    spent = charged.spent_epsilon()
    _sql(charged.path, "UPDATE charges SET epsilon = 0")
    assert charged.spent_epsilon() == spent


def test_hand_edited_global_epsilon_is_refused(charged: PrivacyLedger) -> None:
    _sql(charged.path, "UPDATE ledger_meta SET value = '500.0' WHERE key = 'epsilon'")
    with pytest.raises(LedgerCorruptError, match="global budget was edited") as caught:
        PrivacyLedger.open(charged.path)
    _one_line(caught.value)
    # An instance opened before the edit re-reads the header on every operation.
    _assert_refuses_everything(charged, "global budget was edited")


@pytest.mark.parametrize("epsilon", ["nan", "inf", "-1.0", "0.0", "lots"])
def test_header_rewritten_with_matching_checksum_must_still_hold_a_usable_budget(
    charged: PrivacyLedger, epsilon: str
) -> None:
    """The checksum is public; a NaN budget with a valid checksum would otherwise admit everything."""
    # Schema 2 header: ...|fingerprint|key id (both empty: this ledger is not bound to data).
    digest = _sha256(f"tunedp-ledger|2|fashion_mnist|{epsilon}|{DELTA!r}||")
    _sql(charged.path, "UPDATE ledger_meta SET value = ? WHERE key = 'epsilon'", (epsilon,))
    _sql(charged.path, "UPDATE ledger_meta SET value = ? WHERE key = 'meta_sha256'", (digest,))
    with pytest.raises(LedgerCorruptError, match="invalid"):
        PrivacyLedger.open(charged.path)


def test_header_missing_a_key_is_refused(charged: PrivacyLedger) -> None:
    _sql(charged.path, "DELETE FROM ledger_meta WHERE key = 'delta'")
    with pytest.raises(LedgerCorruptError, match="lacks"):
        PrivacyLedger.open(charged.path)


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_file_that_is_not_a_ledger_is_refused(ledger_path: Path, content: bytes) -> None:
    ledger_path.parent.mkdir(parents=True)
    ledger_path.write_bytes(content)
    with pytest.raises(LedgerCorruptError) as caught:
        PrivacyLedger.open(ledger_path)
    _one_line(caught.value)
    assert _bytes(ledger_path) == content


def test_sqlite_file_of_another_program_is_refused(ledger_path: Path) -> None:
    ledger_path.parent.mkdir(parents=True)
    _sql(ledger_path, "CREATE TABLE notes (text TEXT)")
    with pytest.raises(LedgerCorruptError, match="not a tunedp ledger"):
        PrivacyLedger.open(ledger_path)


# ----------------------------------------------------------------------------- create / open


def test_create_refuses_to_overwrite_a_ledger(charged: PrivacyLedger) -> None:
    before = _bytes(charged.path)
    with pytest.raises(LedgerError, match="already exists") as caught:
        PrivacyLedger.create(charged.path, dataset="fashion_mnist", epsilon=100.0, delta=DELTA)
    _one_line(caught.value)
    assert _bytes(charged.path) == before
    assert PrivacyLedger.open(charged.path).epsilon == 5.0


def test_create_refuses_to_overwrite_any_file(ledger_path: Path) -> None:
    ledger_path.parent.mkdir(parents=True)
    ledger_path.write_bytes(b"precious")
    with pytest.raises(LedgerError, match="already exists"):
        PrivacyLedger.create(ledger_path, dataset="fashion_mnist", epsilon=1.0, delta=DELTA)
    assert _bytes(ledger_path) == b"precious"


@pytest.mark.parametrize(
    ("dataset", "epsilon", "delta", "match"),
    [
        ("fashion_mnist", 0.0, DELTA, "--epsilon"),
        ("fashion_mnist", -1.0, DELTA, "--epsilon"),
        ("fashion_mnist", math.inf, DELTA, "--epsilon"),
        ("fashion_mnist", math.nan, DELTA, "--epsilon"),
        ("fashion_mnist", 1.0, 0.0, "--delta"),
        ("fashion_mnist", 1.0, 1.0, "--delta"),
        ("fashion_mnist", 1.0, math.nan, "--delta"),
        ("../escape", 1.0, DELTA, "--dataset"),
        ("", 1.0, DELTA, "--dataset"),
    ],
)
def test_create_refuses_invalid_budget_or_name_and_writes_nothing(
    tmp_path: Path, dataset: str, epsilon: float, delta: float, match: str
) -> None:
    path = tmp_path / "x.sqlite"
    with pytest.raises(LedgerError, match=match):
        PrivacyLedger.create(path, dataset=dataset, epsilon=epsilon, delta=delta)
    assert list(tmp_path.iterdir()) == []


def test_open_missing_ledger_says_how_to_create_it(ledger_path: Path) -> None:
    with pytest.raises(LedgerMissingError, match="tunedp budget init --dataset fashion_mnist"):
        PrivacyLedger.open(ledger_path, dataset="fashion_mnist")
    assert not ledger_path.exists()


def test_open_refuses_a_ledger_of_another_dataset(charged: PrivacyLedger) -> None:
    with pytest.raises(LedgerError, match="belongs to dataset 'fashion_mnist'"):
        PrivacyLedger.open(charged.path, dataset="adult")


def test_ledger_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the current directory: $TUNEDP_HOME, else $XDG_DATA_HOME/tunedp, else ~/.local/share/tunedp."""
    for name in ("TUNEDP_LEDGER_DIR", "TUNEDP_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    assert (
        default_ledger_path("adult") == tmp_path / "user" / ".local" / "share" / "tunedp" / "ledgers" / "adult.sqlite"
    )
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_ledger_path("adult").is_relative_to(tmp_path / "user")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_ledger_path("adult") == tmp_path / "xdg" / "tunedp" / "ledgers" / "adult.sqlite"
    monkeypatch.setenv("TUNEDP_HOME", str(tmp_path / "home"))
    assert default_ledger_path("adult") == tmp_path / "home" / "ledgers" / "adult.sqlite"
    monkeypatch.setenv("TUNEDP_HOME", "rel")  # made absolute now, so a later `cd` cannot move it
    assert default_ledger_path("adult") == tmp_path / "rel" / "ledgers" / "adult.sqlite"
    monkeypatch.setenv("TUNEDP_LEDGER_DIR", str(tmp_path / "dir"))
    with pytest.raises(LedgerError, match="TUNEDP_LEDGER_DIR is no longer read"):
        default_ledger_path("adult")
    monkeypatch.delenv("TUNEDP_LEDGER_DIR")
    with pytest.raises(LedgerError, match="--dataset"):
        default_ledger_path("a/b")


# ----------------------------------------------------------------------------- bookkeeping


def test_set_status_never_changes_what_was_spent(charged: PrivacyLedger) -> None:
    spent = charged.spent_epsilon()
    search_id = charged.charges()[0].search_id
    for status in ("running", "failed", "interrupted", "completed"):
        charged.set_status(search_id, status)
        assert charged.charges()[0].status == status
        assert charged.spent_epsilon() == spent
    with pytest.raises(ValueError, match="status"):
        charged.set_status(search_id, "refunded")
    with pytest.raises(LedgerError, match="no charge"):
        charged.set_status("nope", "completed")
    assert charged.spent_epsilon() == spent


def test_event_outside_the_whitelist_is_refused_before_anything_is_written(charged: PrivacyLedger) -> None:
    before = _bytes(charged.path)
    for event in (dp_event.LaplaceDpEvent(1.0), dp_event.ComposedDpEvent([])):
        with pytest.raises(ValueError):
            charged.charge(event, config_hash="h", mode="grid")
    assert _bytes(charged.path) == before
    assert len(charged.charges()) == 1


def test_charging_the_same_search_id_twice_is_refused(charged: PrivacyLedger) -> None:
    search_id = charged.charges()[0].search_id
    before = _bytes(charged.path)
    with pytest.raises(LedgerError, match="already charged") as caught:
        charged.charge(dp_event.GaussianDpEvent(50.0), config_hash="h", mode="grid", search_id=search_id)
    assert not isinstance(caught.value, LedgerCorruptError)
    assert _bytes(charged.path) == before


def test_a_deleted_charge_is_detected_not_forgotten(tmp_path: Path) -> None:
    """Deleting a row is the cheapest way to 'regain' budget by hand; the hash chain catches it."""
    path = tmp_path / "chain.sqlite"
    ledger = PrivacyLedger.create(path, dataset="chain", epsilon=50.0, delta=DELTA)
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(3.0), 4)
    for label in ("first", "second", "third"):
        ledger.charge(event, config_hash=label, mode="grid", label=label)
    for where in ("label = 'second'", "label = 'third'"):
        copy = tmp_path / f"copy-{where[9:15]}.sqlite"
        copy.write_bytes(path.read_bytes())
        _sql(copy, f"DELETE FROM charges WHERE {where}")
        tampered = PrivacyLedger.open(copy)
        with pytest.raises(LedgerCorruptError, match="removed") as caught:
            tampered.spent_epsilon()
        _one_line(caught.value)
        with pytest.raises(LedgerCorruptError):
            tampered.charge(event, config_hash="x", mode="grid")
    # The untouched ledger still reads and composes all three charges.
    assert len(PrivacyLedger.open(path).charges()) == 3


# ----------------------------------------------------------------------------- times: the UTC day only


def test_a_ledger_records_only_the_day_and_still_reads_rows_that_stored_seconds(charged: PrivacyLedger) -> None:
    """Issue 23: a charge's time and a search's end would give its duration (which grows with K)."""
    search_id = charged.charges()[0].search_id
    charged.set_status(search_id, "completed", at="2026-12-06T23:59:58-02:00")  # 01:59:58 UTC on the 7th
    with sqlite3.connect(charged.path) as connection:
        created, updated = connection.execute("SELECT created_at, updated_at FROM charges").fetchone()
        meta_created = dict(connection.execute("SELECT key, value FROM ledger_meta").fetchall())["created_at"]
    assert updated == "2026-12-07"
    assert len(created) == len(meta_created) == len("2026-12-06") and "T" not in created + meta_created
    # A ledger written before days-only stored seconds: still read, shown as the day.
    _sql(charged.path, "UPDATE charges SET created_at = '2025-03-04T05:06:07+00:00'")
    assert charged.charges()[0].created_at == "2025-03-04"
