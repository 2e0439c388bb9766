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

Staged searches (``two_stage``, ``public_proxy``) keep the same state for
their stage 1: its K (``trial_count``), its finished trials (``completed``,
without models: a stage-1 model is never released) and, once stage 1 is
over, the trial it selected (``stage1_selected``). A resumed staged search
therefore runs only the stage-1 trials still missing, selects among all K,
and — when stage 1 had finished — goes straight to the final run. Drawing
stage 1's K again on every resume would let a ``timeout`` + ``--resume``
loop keep only short draws, so K would no longer follow the distribution
the charge assumed.

The state is authenticated. ``state.json`` holds the state and an
HMAC-SHA256 of it; the key is derived (:meth:`PrivacyLedger.derived_key`)
from the secret key of the ledger that was charged, for this search id.
Why that key: it is the one secret the driver already keeps and trusts (a
mode-0600 file beside the ledger, refused when others can read it, never
shown), it does not live in the output folder the state lives in, and
deriving it per search makes a state useless for any other search or
ledger. So editing the state — ``trial_count`` lowered from 63 to 6 to
release the best of 6 under a charge for K with mean 30, a released score
raised, a kept model file swapped (each one's SHA-256 is in the state) — is
refused on ``--resume``, in one line, before anything runs. What it cannot
stop, said plainly: someone who reads the ledger's key file can compute a
valid code for any state (keep that file as private as the ledger: it is
what every search's data check rests on too), and an older, genuine copy of
the state restored over a newer one is not told apart (the trials it would
rerun released nothing).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tunedp.accounting.serialization import event_to_json
from tunedp.errors import UserFacingError
from tunedp.release.records import TrialRecord

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

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
    "verified_state",
]

STATE_DIR = ".tunedp-state"
STATE_FILE = "state.json"
#: The format of ``state.json``: the state and its authentication code.
STATE_FORMAT = "tunedp-resume-state/2"


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
    #: Finished trials (of stage 1, for a staged search), in the order they finished.
    completed: tuple[TrialRecord, ...] = ()
    #: SHA-256 of each kept model file, by its folder (what ``--resume`` checks before releasing one).
    models: dict[str, str] = field(default_factory=dict)
    #: Whether a staged search's stage 1 is over, and the trial it selected (``None``: none could be);
    #: a resumed search then runs the final run only.
    stage1_done: bool = False
    stage1_selected: TrialRecord | None = None

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["completed"] = [_record_json(r) for r in self.completed]
        document["stage1_selected"] = _record_json(self.stage1_selected) if self.stage1_selected else None
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ResumeState:
        selected = document.get("stage1_selected")
        return cls(
            search_id=document["search_id"],
            config=document["config"],
            ledger_path=document["ledger_path"],
            trial_count=int(document["trial_count"]),
            seed=document.get("seed"),
            spent_before=document.get("spent_before"),
            completed=tuple(TrialRecord(**r) for r in document.get("completed", ())),
            models=dict(document.get("models", {})),
            stage1_done=bool(document.get("stage1_done", False)),
            stage1_selected=TrialRecord(**selected) if selected is not None else None,
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


def state_key(ledger: PrivacyLedger, search_id: str) -> bytes:
    """The key authenticating ``search_id``'s state: derived from the charged ledger's secret key."""
    return ledger.derived_key(f"resume-state|{search_id}")


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _code(key: bytes, document: dict[str, Any]) -> str:
    return hmac.new(key, STATE_FORMAT.encode() + b"\n" + _canonical(document), hashlib.sha256).hexdigest()


def write_state(output: Path, state: ResumeState, key: bytes) -> None:
    folder = state_dir(output)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    document = state.to_json()
    signed = {"format": STATE_FORMAT, "state": document, "mac": _code(key, document)}
    _write_private(folder / STATE_FILE, json.dumps(signed))


def _read_signed(output: Path) -> dict[str, Any]:
    file = state_dir(output) / STATE_FILE
    if not file.is_file():
        raise ResumeError(
            f"--resume: {output} holds no interrupted search to resume (no {STATE_DIR}/{STATE_FILE}); "
            "a finished or abandoned search cannot be resumed"
        )
    try:
        signed: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResumeError(f"--resume: {file} is damaged ({type(error).__name__}); abandon it with --abandon") from None
    authenticated = isinstance(signed, dict) and signed.get("format") == STATE_FORMAT
    if not authenticated or not isinstance(signed.get("state"), dict):
        raise ResumeError(
            f"--resume: {file} is not an authenticated tunedp state (damaged, or written by an older tunedp); "
            f"abandon it with `tunedp search --abandon {output}`"
        )
    return signed


def read_state(output: Path) -> ResumeState:
    """The state as stored, NOT yet authenticated: enough to find its ledger (see :func:`verified_state`)."""
    document = _read_signed(output)["state"]
    try:
        return ResumeState.from_json(document)
    except (KeyError, TypeError, ValueError) as error:
        file = state_dir(output) / STATE_FILE
        raise ResumeError(f"--resume: {file} is damaged ({type(error).__name__}); abandon it with --abandon") from None


def verified_state(output: Path, ledger: PrivacyLedger) -> ResumeState:
    """The state, after checking its code under ``ledger``'s key and every kept model's SHA-256.

    Refuses (one line, nothing run or charged) a state that was modified
    since tunedp wrote it, or that belongs to another search or ledger.
    """
    signed = _read_signed(output)
    document = signed["state"]
    file = state_dir(output) / STATE_FILE
    search_id = document.get("search_id")
    mac = signed.get("mac")
    if not isinstance(search_id, str) or not isinstance(mac, str):
        raise ResumeError(f"--resume: {file} is damaged (no search id or code); abandon it with --abandon")
    if not hmac.compare_digest(mac, _code(state_key(ledger, search_id), document)):
        raise ResumeError(
            f"--resume: {file} was modified after tunedp wrote it (its authentication code does not match "
            f"ledger {ledger.path}'s key); refusing to resume. Abandon it with `tunedp search --abandon {output}`"
        )
    state = read_state(output)
    for record in state.completed:
        if record.checkpoint_path is None:
            continue
        expected = state.models.get(record.checkpoint_path)
        model = Path(record.checkpoint_path) / "model.pt"
        if expected is None or not model.is_file() or not hmac.compare_digest(_sha256(model), expected):
            raise ResumeError(
                f"--resume: the kept model {model} is missing or was replaced since tunedp wrote it; "
                f"refusing to resume. Abandon it with `tunedp search --abandon {output}`"
            )
    return state


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def abandon(output: Path) -> str:
    """Delete an interrupted search's secret state (its charge stays on the ledger); returns its search id.

    Deleting is always safe, so a damaged or modified state is abandoned
    too; a search another driver is running is not (it would go on). What
    dead drivers left in their private scratch folders goes as well
    (:func:`tunedp.run.scratch.remove_dead_scratch`).
    """
    from tunedp.run.scratch import remove_dead_scratch

    folder = state_dir(output)
    if not folder.is_dir():
        read_state(output)  # the one-line "holds no interrupted search"
    check_unlocked(output, option="--abandon")
    try:
        search_id = read_state(output).search_id
    except ResumeError:
        search_id = "(unreadable)"
    shutil.rmtree(folder, ignore_errors=True)
    remove_dead_scratch()
    return search_id


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


def _lock(output: Path, option: str = "--resume") -> IO[str]:
    """An exclusive lock on the search: two drivers running one search would run more than K trials."""
    handle = open(state_dir(output) / "lock", "w")  # noqa: SIM115 (held until close())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ResumeError(f"{option}: another tunedp is running the search in {output}; wait for it") from None
    return handle


def check_unlocked(output: Path, option: str = "--resume") -> None:
    """Refuse to touch a search another driver is running (the recorder re-takes the lock for good)."""
    _lock(output, option).close()


class StateRecorder:
    """Adds each finished trial (and its model) to the state as it completes, so an interruption loses none.

    Every write is authenticated under ``ledger``'s key for this search (see
    the module docstring).
    """

    def __init__(self, output: Path, state: ResumeState, ledger: PrivacyLedger) -> None:
        self.output = output
        self.state = state
        self._key = state_key(ledger, state.search_id)
        state_dir(output).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock: IO[str] | None = _lock(output)
        write_state(output, state, self._key)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def model_path(self, index: int) -> Path:
        return state_dir(self.output) / f"trial-{index}.pt"

    def record(self, record: TrialRecord, *, keep_model: bool = True) -> None:
        """Keep ``record``; a completed trial's model is copied out of Ray's storage first (if ``keep_model``).

        A stage-1 trial's model is never released, so it is not kept (``keep_model=False``).
        """
        index = len(self.state.completed)
        kept = replace(record, checkpoint_path=None)
        models = self.state.models
        if keep_model and record.checkpoint_path is not None and record.status != "failed":
            source = Path(record.checkpoint_path) / "model.pt"
            if source.is_file():
                folder = state_dir(self.output) / f"trial-{index}"
                folder.mkdir(mode=0o700, exist_ok=True)
                shutil.copyfile(source, folder / "model.pt")
                os.chmod(folder / "model.pt", 0o600)
                kept = replace(record, checkpoint_path=str(folder))
                models = {**models, str(folder): _sha256(folder / "model.pt")}
        self.state = replace(self.state, completed=(*self.state.completed, kept), models=models)
        write_state(self.output, self.state, self._key)

    def select_stage1(self, record: TrialRecord | None) -> None:
        """Stage 1 is over: keep what it selected (``None``: nothing), so a resume goes straight to the final run."""
        chosen = replace(record, checkpoint_path=None) if record is not None else None
        self.state = replace(self.state, stage1_done=True, stage1_selected=chosen)
        write_state(self.output, self.state, self._key)
