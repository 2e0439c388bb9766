"""The one pydantic model configuration every config model shares: frozen, no unknown fields, strict types.

Frozen, because a plan derived from a config must not be mutated under it;
``extra="forbid"``, because a typo such as ``epochz`` must be an error, not a
silently ignored key that changes the privacy cost; strict, because a string
or a boolean must not quietly become a number (the top level is validated lax
once, for YAML 1.1's ``1e-5``, and :mod:`tunedp.config.loading` refuses the
booleans that lax mode would accept).
"""

from __future__ import annotations

from pydantic import ConfigDict

__all__ = ["STRICT"]

STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
