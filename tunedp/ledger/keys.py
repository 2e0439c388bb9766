"""The secret key a ledger fingerprints its data under: drawing it, naming it, its file, and keys derived from it.

Every bound ledger holds one random key (:data:`KEY_BYTES` bytes). Its *key
id* — a one-way label of the key — is stored in the ledger's header and shows
which key belongs to the ledger without revealing it. A sqlite ledger keeps
the key in a mode-0600 file beside it (``<stem>.<key id>.key``: trusted driver
state, never shown); a PostgreSQL ledger keeps it on the server
(``tunedp.data_key``). Either way, other secrets the driver needs (the resume
state's authentication key) are derived from it by :func:`derive_key`.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from tunedp.errors import LedgerCorruptError, LedgerError

__all__ = ["KEY_BYTES", "derive_key", "key_id_of", "key_path", "new_key", "read_key", "write_key"]

KEY_BYTES = 32


def new_key() -> bytes:
    """A fresh random key (drawn once per binding; a ledger is never re-keyed)."""
    return secrets.token_bytes(KEY_BYTES)


def key_id_of(key: bytes) -> str:
    """A one-way label of the key (SHA-256 is preimage resistant): names its file without revealing it."""
    return hashlib.sha256(b"tunedp-ledger-key|" + key).hexdigest()[:16]


def derive_key(key: bytes, purpose: str) -> bytes:
    """A secret key for ``purpose`` derived from a ledger's key (HMAC-SHA256); distinct purposes, independent keys."""
    return hmac.new(key, f"tunedp-derived-key|{purpose}".encode(), hashlib.sha256).digest()


def key_path(ledger_path: Path, key_id: str) -> Path:
    """The key file of a ledger: beside it, named by the key id so two inits never share one."""
    return ledger_path.with_name(f"{ledger_path.stem}.{key_id}.key")


def write_key(ledger_path: Path, key: bytes) -> Path:
    """Create the key file with mode 0600 from the start (no window where it is readable by others)."""
    path = key_path(ledger_path, key_id_of(key))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def read_key(ledger_path: Path, key_id: str) -> bytes:
    """The key of the ledger at ``ledger_path``; refuses a missing file, one others can read, or another key."""
    path = key_path(ledger_path, key_id)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise LedgerError(
            f"ledger {ledger_path}: its key file {path} is missing; restore it from a backup "
            "(without it the ledger cannot verify the data it protects)"
        ) from None
    if stat.S_IMODE(mode) & 0o077:
        raise LedgerError(f"ledger {ledger_path}: key file {path} is readable by others; run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES or key_id_of(key) != key_id:
        raise LedgerCorruptError(f"ledger {ledger_path}: key file {path} does not hold the ledger's key; refusing")
    return key
