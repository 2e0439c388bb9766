"""The refusal catalogues' messages and exit codes, compared with the recording in tests/golden/refusals/.

Issue 24 moved every module; a refusal a user sees must not change with it.
Each catalogue test hands its observed ``{case: {"exit": code, "stderr": text}}``
(temporary paths replaced by ``<HOME>``) to :func:`check_golden_refusals`.
``TUNEDP_RECORD_GOLDEN=1`` writes the recording instead: only for a change that is
meant to alter a message, said so in its commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden" / "refusals"


def check_golden_refusals(catalogue: str, seen: dict[str, dict[str, Any]], *, partial: bool = False) -> None:
    """Assert ``seen`` equals the recording of ``catalogue`` (``partial``: only the cases in ``seen``)."""
    path = GOLDEN / f"{catalogue}.json"
    if os.environ.get("TUNEDP_RECORD_GOLDEN") == "1":
        recorded = json.loads(path.read_text(encoding="utf-8")) if partial and path.exists() else {}
        recorded.update(seen)
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    recorded = json.loads(path.read_text(encoding="utf-8"))
    expected = {name: recorded[name] for name in seen if name in recorded} if partial else recorded
    assert set(seen) <= set(recorded), f"cases with no recording: {sorted(set(seen) - set(recorded))}"
    assert seen == expected
