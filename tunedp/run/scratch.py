"""The driver's private scratch folder: where Ray and Tune write about the trials, mode 0700, gone however it ends.

What Ray and Tune write while a search runs reveals the secret trial count K
of a ``release: best`` search: Tune's experiment files (one folder per trial,
named by its hyperparameters; ``basic-variant-state-*.json`` holding
``_total_samples`` = K), Ray's session logs (one line per trial from every
worker) and the trials' own temporary files. So all of it lives under ONE
folder per driver process, ``<tmp>/tdp-ray-<pid>-<random>``:

* created by :func:`tempfile.mkdtemp`, i.e. mode 0700 from the start and
  with an unpredictable name (no other local user can pre-create it, or
  enter it). Ray makes its own ``_temp_dir`` and session folders mode 0777
  on purpose (``try_make_directory_shared``); under a 0700 parent they are
  unreachable all the same, and the Ray processes run with umask 077
  (:func:`private_umask`) so their logs are 0600 besides;
* named by the driver's pid, with the pid's start time in an ``owner`` file,
  so that whoever finds it can tell whether its driver still runs;
* removed when the driver exits normally (``atexit``), and — after a
  ``kill -9``, a power cut or an OOM kill, where no code of the driver runs —
  by the next tunedp command (:func:`remove_dead_scratch`, called by the
  command line and whenever a local Ray starts), which removes every such
  folder of this user whose driver is gone (its pid is not running, or now
  belongs to a process started at another time: a reused pid).

``/tmp`` (not ``$TMPDIR``) is the base when it exists: Ray's unix sockets live
under the folder and their paths must stay within 107 bytes. (A ``/tmp``
shared between pid namespaces — containers mounting the host's — would make
another namespace's running driver look dead: do not share ``/tmp`` that way.)

Imports nothing beyond the standard library: the command line calls it first.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "ROOT_PREFIX",
    "private_folder",
    "private_umask",
    "remove_dead_scratch",
    "scratch_root",
]

ROOT_PREFIX = "tdp-ray-"
"""Every private scratch folder is ``<base>/tdp-ray-<driver pid>-<random>``."""

OWNER_FILE = "owner"
_NAME = re.compile(rf"^{re.escape(ROOT_PREFIX)}(\d+)-[^/]+$")

_lock = threading.Lock()
_root: Path | None = None


def _base() -> Path:
    tmp = Path("/tmp")
    return tmp if tmp.is_dir() else Path(tempfile.gettempdir())


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from ``/proc``); ``None`` where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5)


def _running(pid: int, started: str | None) -> bool:
    """Whether the process that made a scratch folder still runs (a reused pid does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds the pid: not ours to judge
    if started is None:
        return True  # no record of the start time: assume it is still the driver (conservative)
    now = _start_time(pid)
    return now is None or now == started


def scratch_root() -> Path:
    """This process's private folder (made on first use, removed at exit)."""
    global _root
    with _lock:
        pid = os.getpid()
        if _root is not None and _root.is_dir() and _root.name.startswith(f"{ROOT_PREFIX}{pid}-"):
            return _root
        root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{pid}-", dir=_base()))
        os.chmod(root, 0o700)  # mkdtemp's mode already; said explicitly because it is the guarantee
        descriptor = os.open(root / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(f"{pid} {_start_time(pid) or ''}\n")
        atexit.register(_remove_own, root, pid)
        _root = root
        return root


def _remove_own(root: Path, pid: int) -> None:
    if os.getpid() == pid:  # a forked child (Ray's worker start-up) must not remove its parent's folder
        shutil.rmtree(root, ignore_errors=True)


def private_folder(prefix: str) -> Path:
    """A fresh folder inside :func:`scratch_root` (e.g. Tune's storage, a kept checkpoint)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))


@contextmanager
def private_umask() -> Iterator[None]:
    """Umask 077 for the block: processes started in it (Ray's) create files no other user can read."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _owner(folder: Path, pid: int) -> str | None:
    """The driver's start time the folder records (``None``: not recorded, e.g. an older tunedp's)."""
    try:
        recorded_pid, _, started = (folder / OWNER_FILE).read_text(encoding="ascii").strip().partition(" ")
    except (OSError, ValueError):
        return None
    return (started or None) if recorded_pid == str(pid) else None


def _dead_folders(base: Path) -> Iterator[Path]:
    me = os.getpid()
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for folder in entries:
        match = _NAME.match(folder.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            info = folder.lstat()
        except OSError:
            continue
        # Only real folders of this user (never through a link another user planted).
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or pid == me:
            continue
        if not _running(pid, _owner(folder, pid)):
            yield folder


def remove_dead_scratch() -> list[Path]:
    """Remove every scratch folder of this user whose driver is gone; returns what was removed."""
    removed = []
    for folder in _dead_folders(_base()):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed
