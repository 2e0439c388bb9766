"""One ledger per protected dataset (issue 10 §1): the data picks the ledger, and the ledger checks the data.

Each test is a way the same rows used to get a second, fresh budget — a
config ``dataset:`` alias, ``--dataset-ledger``, a ledger initialised under
another name, another working directory, a modified copy of the data — and
asserts that no search can charge anything through it, with every ledger file
byte-identical afterwards. Real data (digits, UCI Adult), real sqlite files,
the real console script; nothing here starts Ray (every refusal comes first).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dp_accounting import dp_event
from search_helpers import digits_table_search

from tunedp.config import load_config
from tunedp.ledger.binding import (
    bind_ledger,
    create_ledger,
    fingerprinter,
    protected_fingerprint,
    verify_search_data,
)
from tunedp.ledger.sqlite import (
    DataMismatchError,
    LedgerCorruptError,
    LedgerError,
    PrivacyLedger,
    key_path,
)
from tunedp.run.driver import search
from tunedp.workloads import resolve_workload
from tunedp.workloads.files import ADULT_DIR_ENV, adult_files

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "search_spaces" / "example.yaml"
_script = Path(sys.executable).with_name("tunedp")
TUNEDP = str(_script) if _script.exists() else shutil.which("tunedp")


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(args: list[str], home: Path, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    assert TUNEDP is not None
    environment = {k: v for k, v in os.environ.items() if k not in {"TUNEDP_HOME", "TUNEDP_LEDGER_DIR"}}
    environment.update(TUNEDP_HOME=str(home), NO_COLOR="1", COLUMNS="300", TUNEDP_TRACKING="0", **env)
    return subprocess.run(
        [TUNEDP, *args], cwd=cwd or home, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


def _refused(done: subprocess.CompletedProcess[str], *names: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for name in names:
        assert name in lines[0], lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A tunedp home with the digits ledger (ε = 1, too small for example.yaml) and a roomy alias ledger."""
    folder = tmp_path / "home"
    create_ledger(folder / "ledgers" / "digits.sqlite", dataset="digits", epsilon=1.0, delta=1e-5)
    PrivacyLedger.create(folder / "ledgers" / "digits_alias.sqlite", dataset="digits_alias", epsilon=100.0, delta=1e-5)
    return folder


# ----------------------------------------------------------------------------- aliases


def test_a_config_naming_another_dataset_is_refused_and_charges_nothing(home: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["dataset"] = "digits_alias"
    path = tmp_path / "alias.yaml"
    path.write_text(yaml.safe_dump(config))
    before = _snapshot(home)
    for command in ("search", "plan"):
        _refused(_cli([command, "--config", str(path)], home), "dataset", "digits_alias", "'digits'")
    assert _snapshot(home) == before
    with pytest.raises(ValueError, match="no aliases"):
        load_config(path)


def test_dataset_ledger_flag_naming_another_dataset_is_refused(home: Path) -> None:
    before = _snapshot(home)
    done = _cli(["search", "--config", str(EXAMPLE), "--dataset-ledger", "digits_alias"], home)
    _refused(done, "--dataset-ledger", "digits_alias")
    assert _snapshot(home) == before


def test_a_ledger_initialised_under_another_name_cannot_be_charged(home: Path) -> None:
    """`budget init --dataset digits_alias --size N` succeeds, but nothing that reads digits can charge it."""
    other = home / "other"
    other.mkdir()
    made = _cli(
        ["budget", "init", "--dataset", "digits_other", "--epsilon", "50", "--delta", "1e-5", "--size", "1497"], other
    )
    assert made.returncode == 0, made.stderr
    assert "unbound" in made.stdout
    alias = other / "ledgers" / "digits_other.sqlite"
    before = {**_snapshot(home), **_snapshot(other)}
    _refused(_cli(["search", "--config", str(EXAMPLE), "--ledger", str(alias)], home), "--ledger", "digits_other")
    config = load_config(EXAMPLE)
    with pytest.raises(LedgerError, match="belongs to dataset 'digits_other'"):
        search(config, ledger_path=alias)
    # Even handed to the driver's charging stage directly, the data check refuses it.
    with pytest.raises(DataMismatchError, match="belongs to dataset 'digits_other'"):
        verify_search_data(PrivacyLedger.open(alias), "digits")
    # And it cannot be bound to digits' rows: no workload reads "digits_other".
    with pytest.raises(DataMismatchError, match="no workload reads dataset 'digits_other'"):
        bind_ledger(PrivacyLedger.open_for_binding(alias))
    assert {**_snapshot(home), **_snapshot(other)} == before


def test_a_copied_ledger_file_without_its_key_cannot_be_charged(home: Path) -> None:
    original = home / "ledgers" / "digits.sqlite"
    copy = home / "copies" / "digits.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    with pytest.raises(LedgerError, match=r"key file .* is missing"):
        verify_search_data(PrivacyLedger.open(copy), "digits")


# ----------------------------------------------------------------------------- location


def test_changing_directory_keeps_the_same_ledger(tmp_path: Path) -> None:
    """With no TUNEDP_HOME the ledger lives in the per-user data dir: `cd` elsewhere finds the same one."""
    user = tmp_path / "user"
    env = {"HOME": str(user), "XDG_DATA_HOME": ""}
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in {"TUNEDP_HOME", "TUNEDP_LEDGER_DIR"}}
    environment.update(NO_COLOR="1", COLUMNS="300", **env)

    def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        assert TUNEDP is not None
        return subprocess.run([TUNEDP, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)

    made = run(["budget", "init", "--dataset", "digits", "--epsilon", "2", "--delta", "1e-5"], first)
    assert made.returncode == 0, made.stderr
    expected = user / ".local" / "share" / "tunedp" / "ledgers" / "digits.sqlite"
    PrivacyLedger.open(expected).charge(dp_event.GaussianDpEvent(4.0), config_hash="h", mode="grid/all")
    shown = run(["budget", "show", "--dataset", "digits", "--json"], second)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["ledger"] == str(expected) and len(summary["charges"]) == 1
    assert summary["fingerprint"] == PrivacyLedger.open(expected).fingerprint
    assert summary["fingerprint"].startswith("hmac-sha256/v1:")
    assert not any(first.iterdir()) and not any(second.iterdir())  # nothing in either working directory
    # The human form prints the path and the fingerprint, never the key.
    human = run(["budget", "show", "--dataset", "digits"], second)
    key = next(expected.parent.glob("digits.*.key")).read_text().strip()
    assert str(expected) in human.stdout and summary["fingerprint"] in human.stdout
    assert key not in human.stdout + shown.stdout


# ----------------------------------------------------------------------------- the data itself


def _modified_adult(folder: Path) -> Path:
    """A copy of UCI Adult with one training row changed (age 39 → 40): a neighbouring dataset."""
    files = adult_files()
    folder.mkdir()
    shutil.copyfile(files.test, folder / "adult.test")
    lines = files.train.read_text().splitlines(keepends=True)
    assert lines[0].startswith("39, State-gov")
    lines[0] = "40" + lines[0][2:]
    (folder / "adult.data").write_text("".join(lines))
    return folder


def test_a_modified_dataset_is_refused_before_charging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunedp.workloads import adult_torch

    monkeypatch.delenv(ADULT_DIR_ENV, raising=False)
    adult_torch.load.cache_clear()
    path = tmp_path / "ledgers" / "adult.sqlite"
    ledger = create_ledger(path, dataset="adult", epsilon=50.0, delta=1e-5)
    before = _snapshot(tmp_path / "ledgers")
    # An exact copy of the files verifies: the fingerprint is of the rows, not of a path.
    exact = tmp_path / "exact"
    exact.mkdir()
    for name in ("adult.data", "adult.test"):
        shutil.copyfile(getattr(adult_files(), "train" if name == "adult.data" else "test"), exact / name)
    monkeypatch.setenv(ADULT_DIR_ENV, str(exact))
    adult_torch.load.cache_clear()
    verify_search_data(ledger, "adult")
    # One changed row: refused before anything is charged; the ledger is byte-identical.
    monkeypatch.setenv(ADULT_DIR_ENV, str(_modified_adult(tmp_path / "modified")))
    adult_torch.load.cache_clear()
    try:
        with pytest.raises(DataMismatchError, match="fingerprint mismatch") as caught:
            search(load_config(REPO / "search_spaces" / "adult.yaml"), ledger_path=path)
        assert "\n" not in str(caught.value)
        # A copy with a row removed does not even load: refused in one line too, still before charging.
        short = tmp_path / "short"
        short.mkdir()
        shutil.copyfile(exact / "adult.test", short / "adult.test")
        lines = [line for line in (exact / "adult.data").read_text().splitlines(keepends=True) if line.strip()]
        (short / "adult.data").write_text("".join(lines[:-1]))
        monkeypatch.setenv(ADULT_DIR_ENV, str(short))
        adult_torch.load.cache_clear()
        with pytest.raises(DataMismatchError, match="cannot load its protected data") as caught:
            search(load_config(REPO / "search_spaces" / "adult.yaml"), ledger_path=path)
        assert "\n" not in str(caught.value)
    finally:
        adult_torch.load.cache_clear()
    assert _snapshot(tmp_path / "ledgers") == before
    assert PrivacyLedger.open(path).charges() == []


def test_the_fingerprint_is_a_keyed_hash_of_train_and_validation_rows() -> None:
    """HMAC under the ledger's key (not a plain hash, which would be a membership oracle); test rows excluded."""
    splits = resolve_workload("digits").load()
    key = bytes(range(32))
    mac = hmac.new(key, b"hmac-sha256/v1|digits\n", hashlib.sha256)
    for name, split in (("train", splits.train), ("validation", splits.validation)):
        inputs, targets = split.inputs.numpy(), split.targets.numpy()
        mac.update(f"{name}|inputs|<f4|{inputs.shape}|targets|<i8|{targets.shape}\n".encode())
        mac.update(inputs.astype("<f4").tobytes())
        mac.update(targets.astype("<i8").tobytes())
    assert protected_fingerprint("digits", key) == "hmac-sha256/v1:" + mac.hexdigest()
    assert protected_fingerprint("digits", bytes(32)) != protected_fingerprint("digits", key)
    plain = hashlib.sha256(splits.train.inputs.numpy().tobytes()).hexdigest()
    assert plain not in protected_fingerprint("digits", key)


# ----------------------------------------------------------------------------- the header is tamper-checked


def _sql(path: Path, statement: str, parameters: tuple[object, ...] = ()) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()


def test_the_fingerprint_and_key_id_are_covered_by_the_tamper_checks(tmp_path: Path) -> None:
    path = tmp_path / "digits.sqlite"
    ledger = create_ledger(path, dataset="digits", epsilon=10.0, delta=1e-5)
    ledger.charge(dp_event.GaussianDpEvent(5.0), config_hash="h", mode="grid/all")
    key_file = key_path(path, ledger.key_id)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    for field, value in (("fingerprint", "hmac-sha256/v1:" + "0" * 64), ("key_id", "0" * 16), ("fingerprint", "")):
        copy = tmp_path / f"tampered-{field}-{len(value)}.sqlite"
        shutil.copyfile(path, copy)
        _sql(copy, "UPDATE ledger_meta SET value = ? WHERE key = ?", (value, field))
        with pytest.raises(LedgerCorruptError, match="edited outside tunedp"):
            PrivacyLedger.open(copy)
    # A key file with loose permissions, or another ledger's key, is refused.
    key_file.chmod(0o644)
    with pytest.raises(LedgerError, match="chmod 600"):
        ledger.verify_data(fingerprinter("digits"))
    key_file.chmod(0o600)
    other = create_ledger(tmp_path / "x" / "digits.sqlite", dataset="digits", epsilon=10.0, delta=1e-5)
    shutil.copyfile(key_path(other.path, other.key_id), key_file)
    key_file.chmod(0o600)
    with pytest.raises(LedgerCorruptError, match="does not hold the ledger's key"):
        ledger.verify_data(fingerprinter("digits"))


# ----------------------------------------------------------------------------- ledgers from before fingerprints


def _legacy_ledger(path: Path, events: list[dp_event.DpEvent]) -> None:
    """A schema-1 ledger as the previous tunedp wrote it (header digest and chain, no fingerprint)."""
    from tunedp.accounting.serialization import event_to_json

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    genesis = sha("tunedp-ledger|1|digits|10.0|1e-05")
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE charges (id INTEGER PRIMARY KEY AUTOINCREMENT, search_id TEXT NOT NULL UNIQUE, "
        "created_at TEXT NOT NULL, config_hash TEXT NOT NULL, mode TEXT NOT NULL, label TEXT NOT NULL, "
        "epsilon REAL NOT NULL, event_json TEXT NOT NULL, event_sha256 TEXT NOT NULL, chain_sha256 TEXT NOT NULL, "
        "status TEXT NOT NULL, updated_at TEXT NOT NULL);"
    )
    link = genesis
    for i, event in enumerate(events):
        event_json = json.dumps(event_to_json(event), sort_keys=True, separators=(",", ":"))
        link = sha(f"tunedp-charge|{link}|s{i}|{sha(event_json)}")
        connection.execute(
            "INSERT INTO charges(search_id, created_at, config_hash, mode, label, epsilon, event_json, "
            "event_sha256, chain_sha256, status, updated_at) VALUES (?, 'd', 'h', 'grid/all', '', 1.0, ?, ?, ?, "
            "'completed', 'd')",
            (f"s{i}", event_json, sha(event_json), link),
        )
    meta = {"schema_version": "1", "dataset": "digits", "epsilon": "10.0", "delta": "1e-05"}
    meta.update(created_at="d", meta_sha256=genesis, head_sha256=link)
    connection.executemany("INSERT INTO ledger_meta VALUES (?, ?)", list(meta.items()))
    connection.commit()
    connection.close()


def test_an_old_ledger_is_refused_until_bound_and_keeps_its_charges(tmp_path: Path) -> None:
    path = tmp_path / "digits.sqlite"
    events = [dp_event.GaussianDpEvent(3.0), dp_event.GaussianDpEvent(4.0)]
    _legacy_ledger(path, events)
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r"predates data fingerprints.*tunedp budget bind --ledger") as caught:
        PrivacyLedger.open(path)
    assert "\n" not in str(caught.value) and not isinstance(caught.value, LedgerCorruptError)
    assert path.read_bytes() == before
    ledger = PrivacyLedger.open_for_binding(path)
    assert bind_ledger(ledger) == "digits"
    bound = PrivacyLedger.open(path)
    assert bound.fingerprint == ledger.fingerprint and bound.bound
    assert [c.search_id for c in bound.charges()] == ["s0", "s1"]
    from tunedp.accounting.epsilon import rdp_epsilon

    assert bound.spent_epsilon() == pytest.approx(rdp_epsilon(dp_event.ComposedDpEvent(events), 1e-5))
    verify_search_data(bound, "digits")
    with pytest.raises(LedgerError, match="already bound"):
        bind_ledger(PrivacyLedger.open_for_binding(path))


# ----------------------------------------------------------------------------- budget init --config


def _csv_config(folder: Path) -> Path:
    """A search config over scikit-learn's real digits written as a CSV table (relative path)."""
    config = folder / "table.yaml"
    config.write_text(yaml.safe_dump(digits_table_search(folder)))
    return config


def test_budget_init_from_a_csv_config_binds_the_tables_rows(tmp_path: Path) -> None:
    """No --dataset, no --size: the config's workload declares both; the ledger is bound to the table."""
    home = tmp_path / "home"
    config = _csv_config(tmp_path / "project")
    done = _cli(["budget", "init", "--config", str(config), "--epsilon", "4", "--delta", "1e-4"], home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    path = home / "ledgers" / "digits_table.sqlite"
    assert "data fingerprint: hmac-sha256/v1:" in done.stdout and str(path) in done.stdout.replace("\n", "")
    # What a search runs before charging, in a fresh process as each search is: it passes on the
    # table as bound, and refuses once two rows are swapped.
    verify = (
        "import sys; from tunedp.ledger.sqlite import PrivacyLedger; from tunedp.config import load_config; "
        "from tunedp.ledger.binding import verify_search_data; "
        "verify_search_data(PrivacyLedger.open(sys.argv[1]), load_config(sys.argv[2]).workload)"
    )
    check = [sys.executable, "-c", verify, str(path), str(config)]
    assert subprocess.run(check, capture_output=True, text=True, check=False).returncode == 0
    table = tmp_path / "project" / "digits.csv"
    rows = table.read_text().splitlines()
    table.write_text("\n".join([rows[0], *rows[2:], rows[1]]) + "\n")  # the first row moved to the end
    refused = subprocess.run(check, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "DataMismatchError" in refused.stderr
    # A second init cannot reset the budget; δ is checked against the workload's declared n (1497).
    again = _cli(["budget", "init", "-c", str(config), "--epsilon", "9", "--delta", "1e-4"], home, tmp_path)
    _refused(again, "already exists")


def test_budget_init_from_an_import_path_config_needs_no_size(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = yaml.safe_load(EXAMPLE.read_text())
    data["workload"] = "workload_fixtures:DIGITS_PUBLIC_VALIDATION"
    config = tmp_path / "custom.yaml"
    config.write_text(yaml.safe_dump(data))
    tests = str(Path(__file__).resolve().parents[2])
    args = ["budget", "init", "-c", str(config), "--epsilon", "2", "--delta", "1e-4"]
    done = _cli(args, home, tmp_path, PYTHONPATH=tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert PrivacyLedger.open(home / "ledgers" / "digits_public_validation.sqlite").fingerprint.startswith("hmac")


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--size", "1497"], ["--size", "declares its sizes"]),
        (["--dataset", "adult"], ["--dataset", "'digits_table'", "no aliases"]),
        (["--delta", "0.01"], ["--delta", "1/n"]),
    ],
)
def test_budget_init_from_a_config_refuses_bad_flags_and_writes_nothing(
    tmp_path: Path, extra: list[str], names: list[str]
) -> None:
    home = tmp_path / "home"
    config = _csv_config(tmp_path / "project")
    args = ["budget", "init", "--config", str(config), "--epsilon", "4"]
    args += extra if "--delta" in extra else [*extra, "--delta", "1e-4"]
    _refused(_cli(args, home, tmp_path), *names)
    assert not home.exists() or not any(home.rglob("*.sqlite"))


@pytest.mark.parametrize(
    ("workload", "names"),
    [
        ("nowhere_pkg.workloads:WORKLOAD", ["workload:", "cannot import 'nowhere_pkg.workloads'", "PYTHONPATH"]),
        ("no-such-workload", ["workload:", "unknown workload 'no-such-workload'"]),
    ],
)
def test_budget_init_from_a_config_whose_workload_cannot_load_writes_nothing(
    tmp_path: Path, workload: str, names: list[str]
) -> None:
    """A workload that does not resolve: one line naming the field (not prefixed twice), no ledger, no key."""
    home = tmp_path / "home"
    data = yaml.safe_load(EXAMPLE.read_text())
    data["workload"] = workload
    config = tmp_path / "custom.yaml"
    config.write_text(yaml.safe_dump(data))
    done = _cli(["budget", "init", "-c", str(config), "--epsilon", "2", "--delta", "1e-4"], home, tmp_path)
    _refused(done, *names)
    assert "ConfigError" not in done.stderr and done.stderr.count("workload:") == 1, done.stderr
    assert not home.exists() or not any(path.is_file() for path in home.rglob("*"))
