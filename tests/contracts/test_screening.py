"""The text rules every event meets (`contracts.screening`): depth, NUL, a BSN in clear."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.screening import MAX_DEPTH, is_bsn, nesting_exceeds, redact_bsns, screen


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("123456782", True),
        ("111222333", True),
        ("123456789", False),
        ("000000000", False),
        ("12345678", False),
    ],
)
def test_the_eleven_test_tells_a_bsn_from_other_nine_digits(digits: str, expected: bool) -> None:
    """9*d1 + ... + 2*d8 - d9 divisible by 11, not all zero."""
    assert expected == is_bsn(digits)


def test_nesting_is_bounded_from_the_bytes_and_brackets_in_strings_do_not_count() -> None:
    """One level past MAX_DEPTH is refused; brackets inside a string are text."""
    assert nesting_exceeds(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) is True
    assert nesting_exceeds(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is False
    assert nesting_exceeds(b'{"a": "' + b"[" * 500 + b'"}') is False


def test_a_bsn_in_any_text_is_found_with_its_field_but_not_inside_an_identifier() -> None:
    """Free text is screened; UUIDs' hex digits, ids and sealed boxes are not text."""
    found = screen({"data": {"actions": [{"description": "BSN 123456782 gebeld"}]}})

    assert found is not None
    assert ("unsealed-personal-data", "data.actions.0.description") == found[:2]
    assert (
        screen({"id": "123456782", "data": {"handoff_id": "1e2a3b4c-0000-4000-8000-a123456782bc"}})
        is None
    )
    assert screen({"data": {"context": {"personal": {"sealed": {"uwv": "x 123456782 y"}}}}}) is None


def test_a_nul_character_in_a_name_or_text_is_found() -> None:
    """U+0000 anywhere, keys included."""
    assert "nul-character" == screen({"data": {"a\x00": "b"}}).code  # type: ignore[union-attr]
    assert screen({"data": {"note": "gewoon"}}, b'{"data": {"note": "gewoon"}}') is None


def test_redaction_replaces_only_bsns() -> None:
    """A quarantined copy keeps its text but for the BSN."""
    assert "BSN [BSN removed], dossier 123456789" == redact_bsns("BSN 123456782, dossier 123456789")


def test_random_uuids_are_never_taken_for_a_bsn() -> None:
    """Ten thousand UUIDs in a text field: no finding (once a false positive in the fault suite)."""
    assert [] == [
        u for u in (str(uuid.uuid4()) for _ in range(10_000)) if screen({"data": {"x": u}})
    ]


@settings(max_examples=400, deadline=None)
@given(
    before=st.text(alphabet="aZ9-_ é\u00a0\u0663:/", max_size=4),
    after=st.text(alphabet="aZ9-_ é\u00a0\u0663:/", max_size=4),
    digits=st.sampled_from(["123456782", "111222333", "1234567820", "12345678"]),
)
def test_the_raw_bytes_shortcut_finds_every_bsn_the_walk_finds(
    before: str, after: str, digits: str
) -> None:
    """Screening with the event's bytes gives the same finding as the walk of its text, for
    nine digits next to letters, digits, non-ASCII and punctuation, or at a text's ends."""
    document = {"data": {"note": f"{before}{digits}{after}"}}
    raw = json.dumps(document, ensure_ascii=False).encode()

    assert screen(document) == screen(document, raw)
