"""Every reason code a refusal can carry is documented where a sender looks it up."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.reasons import REASON_CODES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _documented_codes() -> set[str]:
    """The codes in the first cell of a table row in docs/ (`| \\`code\\` | ...`)."""
    found: set[str] = set()
    for page in DOCS.glob("*.md"):
        for line in page.read_text(encoding="utf-8").splitlines():
            first = re.match(r"^\| ([^|]+) \|", line)
            if first:
                found.update(re.findall(r"`([a-z]+(?:-[a-z]+)*)`", first.group(1)))
    return found


def test_every_reason_code_has_a_row_in_the_docs() -> None:
    assert set() == set(REASON_CODES) - _documented_codes()


def test_every_reason_code_is_kebab_case_and_says_when_it_is_given() -> None:
    assert [] == [c for c in REASON_CODES if not re.fullmatch(r"[a-z]+(-[a-z]+)*", c)]
    assert [] == [c for c, when in REASON_CODES.items() if not when.strip()]
