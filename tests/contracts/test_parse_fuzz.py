"""Whatever arrives on an outbox, parse_event answers with a typed event or EventRejected.

Any other exception would crash the router's consumer instead of sending the
message to the dead-letter topic, so this is the property that matters.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import EVENT_CLASSES, CaseEvent, EventRejected, parse_event, source_urn
from contracts.events import CaseOpening, HandoffRejection
from contracts.parse import read_json

FAST = settings(max_examples=300, deadline=None)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _valid_events() -> list[dict[str, Any]]:
    source = source_urn("00000099000000000011", "inning")
    events: list[CaseEvent[Any]] = [
        EVENT_CLASSES["case-opened"].new(
            source=source,
            case_id=uuid.uuid4(),
            data=CaseOpening(category="schulden", summary="Meerdere schulden"),
        ),
        EVENT_CLASSES["handoff-rejected"].new(
            source=source,
            case_id=uuid.uuid4(),
            data=HandoffRejection(
                handoff_id=uuid.uuid4(),
                from_agency="belastingdienst",
                to_agency="uwv",
                reason="Niet onze taak",
                rule_reference="Wgs art. 3",
            ),
        ),
    ]
    return [json.loads(event.to_json()) for event in events]


VALID_EVENTS = _valid_events()


def _key_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value could be swapped, nested ones included."""
    children: Iterable[tuple[Any, Any]]
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return []
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(_key_paths(child, (*prefix, key)))
    return paths


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A valid event with a few values replaced by random JSON (or keys dropped)."""
    document = copy.deepcopy(draw(st.sampled_from(VALID_EVENTS)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _key_paths(document)
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        node = document
        for key in parents:
            node = node[key]
        if isinstance(node, dict) and draw(st.booleans()):
            del node[last]
        else:
            node[last] = draw(JSON_VALUES)
    return json.dumps(document).encode()


REJECTION_CODES = {"oversize", "malformed-json", "invalid-envelope", "unknown-type", "invalid-data"}


def _parses_or_is_rejected(raw: bytes) -> None:
    """Any other exception escapes and fails the test; a rejection carries a known code."""
    try:
        outcome: CaseEvent[Any] | EventRejected = parse_event(raw)
    except EventRejected as rejected:
        outcome = rejected
    if isinstance(outcome, EventRejected):
        assert outcome.code in REJECTION_CODES
        assert outcome.field
    else:
        assert isinstance(outcome, CaseEvent)


@FAST
@given(st.binary(max_size=2048))
def test_any_bytes_give_an_event_or_a_rejection(raw: bytes) -> None:
    _parses_or_is_rejected(raw)


@FAST
@given(JSON_VALUES.map(lambda value: json.dumps(value).encode()))
def test_any_json_gives_an_event_or_a_rejection(raw: bytes) -> None:
    _parses_or_is_rejected(raw)


@FAST
@given(mutated_events())
def test_mutated_valid_event_gives_an_event_or_a_rejection(raw: bytes) -> None:
    _parses_or_is_rejected(raw)


WITHIN_64_BITS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@FAST
@given(value=WITHIN_64_BITS)
def test_read_json_reads_what_json_loads_reads(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()

    assert json.loads(raw) == read_json(raw)


def test_read_json_reads_what_only_the_standard_library_takes() -> None:
    raw = b'{"nan": NaN, "lone": "\\ud800", "huge": 1e400}'

    found = read_json(raw)

    assert ("\ud800", math.inf) == (found["lone"], found["huge"])
    assert math.isnan(found["nan"])


def test_read_json_reads_an_integer_beyond_64_bits_as_the_nearest_float() -> None:
    assert float(2**64) == read_json(str(2**64).encode())


@FAST
@given(raw=st.binary(max_size=40))
def test_read_json_refuses_exactly_what_json_loads_refuses(raw: bytes) -> None:
    try:
        json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 - the same ValueError json.loads raises
            read_json(raw)
    else:
        read_json(raw)
