"""The design the code cites is in the repository: every ``docs/architecture.md`` § citation resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "architecture.md"


def _sections() -> set[str]:
    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", ARCHITECTURE.read_text(encoding="utf-8"), re.MULTILINE))


def _citations() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    files = [REPO / "README.md", *(REPO / "tunedp").rglob("*.py"), *(REPO / "tests").rglob("*.py")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"docs/architecture\.md[^§\n]{0,40}§(\d+(?:\.\d+)*)", text):
            cited.setdefault(match.group(1), set()).add(str(path.relative_to(REPO)))
    return cited


def test_every_cited_section_of_the_architecture_exists() -> None:
    sections, cited = _sections(), _citations()
    assert {"1", "2", "3", "4", "4.1"} <= sections
    assert cited, "nothing cites docs/architecture.md by section"
    missing = {section: files for section, files in cited.items() if section not in sections}
    assert not missing, f"cited sections that docs/architecture.md lacks: {missing}"


def test_nothing_cites_a_design_file_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in [*(REPO / "tunedp").rglob("*.py"), *(REPO / "tests").rglob("*.py")]
        if re.search(r"\bDESIGN\.md\b", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
