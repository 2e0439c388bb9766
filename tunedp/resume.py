"""Resuming an interrupted search: the driver's secret state, kept on disk between two runs.

An interrupted search has been charged in full; rerunning it from scratch
would charge again. ``tunedp search --resume DIR`` continues it instead with
the *same* charge, the same plan and — under ``release: best`` — the same
secret trial count K. That needs state that must never be published:

* K itself (the repeat-and-select bound assumes nobody sees it);
* every completed trial's record (point, released scores, status) and its
  model, since the best of all K trials is released at the end.

It lives in ``DIR/.tunedp-state/`` — a folder of mode 0700 holding
``state.json`` (mode 0600) and one model file per completed trial — never in
the report, MLflow or the ledger. The folder is deleted when the search
finishes (completed or failed) or is abandoned (``tunedp search --abandon
DIR``); it survives only an interruption.

Why a rerun is sound: the guarantee is about the distribution of what is
released. A trial interrupted before it finished released nothing; its
replacement draws fresh batches, noise and (random mode) a fresh point from
the same prior, independently of everything else. So the K finished trials
the release is computed from are distributed exactly as in an uninterrupted
search, and the charge — computed for K such trials — still covers it. What
would break this is an interruption that *depends on the data* (a trial that
crashes the driver on certain rows, a time-out triggered by a data-dependent
run time): "rerun until it completes" would then select runs by the data.
So only interruptions from outside (signals) are resumed; a trial that
failed is final and never rerun. See README, "Interrupting and resuming".
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tunedp.accounting.serialization import event_to_json
from tunedp.errors import UserFacingError
from tunedp.records import TrialRecord

if TYPE_CHECKING:
    from tunedp.accounting.ledger import Charge, PrivacyLedger
    from tunedp.plan import SearchPlan

__all__ = [
    "STATE_DIR",
    "ResumeError",
    "ResumeState",
    "StateRecorder",
    "abandon",
    "charged_search",
    "check_unlocked",
    "finish",
    "read_state",
    "state_dir",
]

STATE_DIR = ".tunedp-state"
STATE_FILE = "state.json"


class ResumeError(UserFacingError):
    """``--resume``/``--abandon`` cannot proceed (one line naming the option and the fix)."""


def state_dir(output: Path) -> Path:
    return output / STATE_DIR


@dataclass(frozen=True, kw_only=True)
class ResumeState:
    """What a later ``--resume`` needs: the charge it continues, the secret K, the finished trials."""

    search_id: str
    config: dict[str, Any]
    ledger_path: str
    trial_count: int
    seed: int | None
    #: The ledger's spent ε before the first run's charge (the report's "spent before").
    spent_before: float | None = None
    completed: tuple[TrialRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["completed"] = [_record_json(r) for r in self.completed]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ResumeState:
        return cls(
            search_id=document["search_id"],
            config=document["config"],
            ledger_path=document["ledger_path"],
            trial_count=int(document["trial_count"]),
            seed=document.get("seed"),
            spent_before=document.get("spent_before"),
            completed=tuple(TrialRecord(**r) for r in document.get("completed", ())),
        )


def _record_json(record: TrialRecord) -> dict[str, Any]:
    document = asdict(record)
    document["released_scores"] = list(record.released_scores)
    return document


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start, atomically (a rename)."""
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def write_state(output: Path, state: ResumeState) -> None:
    folder = state_dir(output)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _write_private(folder / STATE_FILE, json.dumps(state.to_json()))


def read_state(output: Path) -> ResumeState:
    file = state_dir(output) / STATE_FILE
    if not file.is_file():
        raise ResumeError(
            f"--resume: {output} holds no interrupted search to resume (no {STATE_DIR}/{STATE_FILE}); "
            "a finished or abandoned search cannot be resumed"
        )
    try:
        return ResumeState.from_json(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ResumeError(f"--resume: {file} is damaged ({type(error).__name__}); abandon it with --abandon") from None


def abandon(output: Path) -> ResumeState:
    """Delete an interrupted search's secret state; its charge stays on the ledger."""
    state = read_state(output)
    shutil.rmtree(state_dir(output), ignore_errors=True)
    return state


def finish(output: Path) -> None:
    """The search is over (completed or failed): its secret state goes."""
    shutil.rmtree(state_dir(output), ignore_errors=True)


def charged_search(ledger: PrivacyLedger, plan: SearchPlan, search_id: str) -> Charge:
    """The ledger's charge of ``search_id``, checked to be exactly what ``plan`` would charge."""
    for charge in ledger.charges():
        if charge.search_id == search_id:
            if event_to_json(charge.event) != event_to_json(plan.event):
                raise ResumeError(
                    f"--resume: the plan of search {search_id[:12]} no longer matches its charge on {ledger.path} "
                    "(a different tunedp version?); abandon it with --abandon"
                )
            if charge.status in ("completed", "failed"):
                raise ResumeError(f"--resume: search {search_id[:12]} already {charge.status}; nothing to resume")
            return charge
    raise ResumeError(f"--resume: search {search_id[:12]} is not on ledger {ledger.path}; abandon it with --abandon")


def _lock(output: Path) -> IO[str]:
    """An exclusive lock on the search: two drivers running one search would run more than K trials."""
    handle = open(state_dir(output) / "lock", "w")  # noqa: SIM115 (held until close())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ResumeError(f"--resume: another tunedp is running the search in {output}; wait for it") from None
    return handle


def check_unlocked(output: Path) -> None:
    """Refuse to resume a search another driver is running (the recorder re-takes the lock for good)."""
    _lock(output).close()


class StateRecorder:
    """Adds each finished trial (and its model) to the state as it completes, so an interruption loses none."""

    def __init__(self, output: Path, state: ResumeState) -> None:
        self.output = output
        self.state = state
        state_dir(output).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock: IO[str] | None = _lock(output)
        write_state(output, state)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def model_path(self, index: int) -> Path:
        return state_dir(self.output) / f"trial-{index}.pt"

    def record(self, record: TrialRecord) -> None:
        """Keep ``record``; a completed trial's model is copied out of Ray's storage first."""
        index = len(self.state.completed)
        kept = replace(record, checkpoint_path=None)
        if record.checkpoint_path is not None and record.status != "failed":
            source = Path(record.checkpoint_path) / "model.pt"
            if source.is_file():
                folder = state_dir(self.output) / f"trial-{index}"
                folder.mkdir(mode=0o700, exist_ok=True)
                shutil.copyfile(source, folder / "model.pt")
                os.chmod(folder / "model.pt", 0o600)
                kept = replace(record, checkpoint_path=str(folder))
        self.state = replace(self.state, completed=(*self.state.completed, kept))
        write_state(self.output, self.state)
