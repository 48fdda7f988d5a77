"""Reading dead letters from their records, planning replays and printing them: no broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.case import PersonalSection
from contracts.registry import AgencyRegistry
from services.dead_letters import (
    FUTILE,
    NO_REASON,
    REPLAY_OF,
    NeedsConfirmation,
    NotReplayable,
    Record,
    counts,
    find,
    parse_dead_letter,
    parse_id,
    plan_replay,
    plan_replays,
    render_list,
    render_refused,
    render_show,
    replay_caution,
    replay_history,
    replayed_from,
    summary,
    with_reason,
)
from services.router.routing import CaseRouting
from services.runtime.errors import UserError
from services.runtime.kafka.clients import Outgoing
from tests._testutil import EventFactory
from tests.services.router.events import BSN, CITIZEN, full_context, outbox_message, with_context

T0 = int(datetime(2026, 11, 29, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _record(outgoing: Outgoing, *, partition: int = 0, offset: int = 0, minute: int = 0) -> Record:
    """The record `outgoing` becomes on its topic at `partition`:`offset`."""
    return Record(
        topic=outgoing.topic,
        partition=partition,
        offset=offset,
        timestamp_ms=T0 + minute * 60_000,
        key=outgoing.key,
        value=outgoing.value,
        headers=tuple((name, value.encode()) for name, value in outgoing.headers.items()),
    )


def _letter(
    code: str = "wrong-key",
    *,
    origin: str = "agency.uwv.outbox",
    key: bytes | None = None,
    value: bytes = b"{}",
    partition: int = 0,
    offset: int = 0,
    minute: int = 0,
    extra: dict[str, str] | None = None,
) -> Record:
    """A dead letter with the bus's headers written by hand."""
    headers = {
        topics.DLQ_REASON: f"{code}: why",
        topics.DLQ_REASON_CODE: code,
        topics.DLQ_ORIGIN_TOPIC: origin,
        topics.DLQ_ORIGIN_PARTITION: "2",
        topics.DLQ_ORIGIN_OFFSET: "17",
        topics.DLQ_REJECTED_BY: "router",
        **(extra or {}),
    }
    outgoing = Outgoing(topics.DLQ, key, value, headers)
    return _record(outgoing, partition=partition, offset=offset, minute=minute)


@pytest.fixture
def routing(signed_registry: AgencyRegistry) -> CaseRouting:
    return CaseRouting(signed_registry)


def test_a_routers_refusal_parses_to_its_reason_origin_case_and_event(
    routing: CaseRouting, signed_registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    event = EventFactory(signed_registry).opened(case_id, by="uwv")
    message = outbox_message("uwv", case_id, event.to_json(), offset=42)
    dead = routing.refuse(message, None, event, "unauthorised-type", "type: not allowed")[0]

    letter = parse_dead_letter(_record(dead, partition=1, offset=7))

    assert (
        "1:7",
        "unauthorised-type",
        "type: not allowed",
        "router",
        "agency.uwv.outbox@0:42",
        case_id,
        str(event.id),
        "nl.overheid.ketenzaken.case-opened",
        None,
    ) == (
        letter.id,
        letter.reason_code,
        letter.reason,
        letter.rejected_by,
        letter.origin,
        letter.case_id,
        letter.event_id,
        letter.event_type,
        letter.redacted,
    )


def test_a_record_without_the_bus_headers_parses_with_no_reason_and_no_origin() -> None:
    letter = parse_dead_letter(Record(topics.DLQ, 0, 3, T0, None, b"\x00\x01 not json", headers=()))

    assert (NO_REASON, None, "-", None, None, None) == (
        letter.reason_code,
        letter.origin_topic,
        letter.origin,
        letter.case_id,
        letter.event_id,
        letter.event_type,
    )


def test_a_case_id_key_sent_as_a_json_string_is_read_as_the_case_id() -> None:
    case_id = uuid.uuid4()

    letter = parse_dead_letter(_letter(key=f'"{case_id}"'.encode()))

    assert case_id == letter.case_id


def test_a_key_that_is_no_case_id_is_not_shown_in_the_list() -> None:
    letter = parse_dead_letter(_letter(key=BSN.encode()))

    assert None is letter.case_id
    assert BSN not in render_list([letter])


def test_the_list_shows_the_event_id_and_type_but_never_the_events_data() -> None:
    event_id = str(uuid.uuid4())
    value = json.dumps(
        {"id": event_id, "type": "nl.overheid.ketenzaken.case-opened", "data": {"bsn": BSN}}
    ).encode()

    lines = render_list([parse_dead_letter(_letter(value=value, partition=2, offset=9))])

    assert "ID   TIME                  REASON     BY      ORIGIN" in lines
    assert "case-opened" in lines
    assert event_id in lines
    assert BSN not in lines


def test_the_list_summary_carries_the_headers_facts_and_no_value() -> None:
    value = json.dumps({"id": "e-1", "data": {"name": CITIZEN}}).encode()

    shown = summary(parse_dead_letter(_letter(value=value)))

    assert CITIZEN not in json.dumps(shown)
    assert ("wrong-key", "agency.uwv.outbox", 2, 17, "e-1") == (
        shown["reason_code"],
        shown["origin_topic"],
        shown["origin_partition"],
        shown["origin_offset"],
        shown["event_id"],
    )


def test_control_characters_from_a_record_are_escaped_when_printed() -> None:
    letter = parse_dead_letter(_letter(code="evil\x1b[2J", value=b'{"type": "x\\u001b[31m"}'))

    listed = render_list([letter])

    assert "\x1b" not in listed
    assert "evil\\x1b[2J" in listed


def test_a_dead_letter_id_is_partition_colon_offset() -> None:
    assert (1, 42) == parse_id("1:42")


@pytest.mark.parametrize("text", ["", "1", "1:", ":2", "a:b", "1:-2", "1:2:3"])
def test_anything_else_is_no_dead_letter_id(text: str) -> None:
    with pytest.raises(UserError, match="is not a dead letter ID"):
        parse_id(text)


def test_finding_an_id_that_is_not_on_the_topic_fails_in_one_line() -> None:
    letters = [parse_dead_letter(_letter(partition=0, offset=1))]

    with pytest.raises(UserError, match=r"^no dead letter 0:2 on ketenbus\.dlq$"):
        find(letters, "0:2")


def test_counts_are_by_reason_code_most_first_then_by_code() -> None:
    codes = ["wrong-key", "forged-source", "wrong-key", "bad-signature", "forged-source"]
    letters = [parse_dead_letter(_letter(code, offset=n)) for n, code in enumerate(codes)]

    assert [("forged-source", 2), ("wrong-key", 2), ("bad-signature", 1)] == counts(letters)


def test_with_reason_keeps_that_reason_only_oldest_first() -> None:
    letters = [
        parse_dead_letter(_letter("wrong-key", partition=1, offset=0, minute=5)),
        parse_dead_letter(_letter("oversize", partition=0, offset=0, minute=1)),
        parse_dead_letter(_letter("wrong-key", partition=2, offset=0, minute=2)),
    ]

    assert ["2:0", "1:0"] == [d.id for d in with_reason(letters, "wrong-key")]


def test_a_replay_is_the_original_key_and_value_to_the_origin_outbox_marked_as_a_replay() -> None:
    key, value = str(uuid.uuid4()).encode(), b'{"id": "e-1"}'
    letter = parse_dead_letter(_letter(key=key, value=value, partition=1, offset=5))

    replay = plan_replay(letter)

    assert (
        "agency.uwv.outbox",
        key,
        value,
        ((REPLAY_OF, b"1:5"), ("content-type", b"application/cloudevents+json")),
    ) == (replay.topic, replay.key, replay.value, replay.headers)


def test_a_redacted_dead_letter_is_not_replayable(
    routing: CaseRouting, signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]
) -> None:
    case_id = uuid.uuid4()
    clear = full_context("uwv").model_copy(
        update={"personal": PersonalSection(bsn=BSN, name=CITIZEN)}
    )
    event = EventFactory(signed_registry).requested(case_id, uuid.uuid4(), "uwv", "gm0363")
    value = agency_keys["uwv"].sign(with_context(event, clear))
    result = routing.check(outbox_message("uwv", case_id, value))
    assert isinstance(result, list)
    letter = parse_dead_letter(_record(result[0], offset=3))

    with pytest.raises(NotReplayable) as refused:
        plan_replay(letter)

    assert (
        "dead letter 0:3 cannot be replayed: its value is incomplete (data.context.personal "
        "removed, see ketenbus-redacted): the sender must send the event again"
    ) == str(refused.value)


def test_a_dead_letter_from_anything_but_an_agency_outbox_is_not_replayable() -> None:
    letter = parse_dead_letter(_letter(origin=topics.CASES, offset=4))

    with pytest.raises(NotReplayable) as refused:
        plan_replay(letter)

    assert "its origin ketenbus.cases is not an agency outbox" == refused.value.why


def test_planning_many_separates_the_replayable_from_the_rest() -> None:
    """Of many, those from an agency outbox and complete are planned; the rest refused."""
    letters = [
        parse_dead_letter(_letter("unknown-key", offset=0)),
        parse_dead_letter(_letter(origin=topics.CASES, offset=1)),
        parse_dead_letter(_letter(offset=2, extra={topics.DLQ_REDACTED: "data.context.personal"})),
    ]

    plans, refused = plan_replays(letters)

    assert (["0:0"], ["0:1", "0:2"]) == (
        [p.letter.id for p in plans],
        [r.letter.id for r in refused],
    )


def test_the_history_links_each_replay_to_the_dead_letter_it_became() -> None:
    letter = parse_dead_letter(_letter(partition=0, offset=8))
    replays = [
        Record("agency.uwv.outbox", 1, 30, T0 + 1000, None, b"{}", ((REPLAY_OF, b"0:8"),)),
        Record("agency.uwv.outbox", 2, 11, T0 + 2000, None, b"{}", ((REPLAY_OF, b"0:8"),)),
        Record("agency.uwv.outbox", 1, 31, T0 + 3000, None, b"{}", ((REPLAY_OF, b"0:80"),)),
    ]
    again = parse_dead_letter(
        _letter(
            "duplicate-event-id",
            offset=9,
            extra={topics.DLQ_ORIGIN_PARTITION: "1", topics.DLQ_ORIGIN_OFFSET: "30"},
        )
    )

    history = replay_history(letter, replays, [letter, again])

    assert [((1, 30), "0:9"), ((2, 11), None)] == [
        ((e.record.partition, e.record.offset), e.refused_as.id if e.refused_as else None)
        for e in history
    ]
    assert "0:8" == replayed_from(again, replays)
    shown = render_show(letter, history)
    assert "refused again: duplicate-event-id (dead letter 0:9)" in shown
    assert "not refused (delivered, or not routed yet)" in shown


def test_show_prints_the_headers_and_the_value_as_pretty_json() -> None:
    letter = parse_dead_letter(_letter(value=b'{"id":"e-1","data":{"x":1}}', key=b"k"))

    shown = render_show(letter, []).splitlines()

    assert "  ketenbus-reason-code: wrong-key" in shown
    assert "key: k" in shown
    assert ["value (JSON):", "{", '  "id": "e-1",', '  "data": {', '    "x": 1'] == shown[
        shown.index("value (JSON):") : shown.index("value (JSON):") + 5
    ]
    assert "replays: none" in shown


def test_show_prints_a_value_that_is_no_json_as_its_length_and_64_bytes_in_hex() -> None:
    letter = parse_dead_letter(_letter(value=bytes(range(100))))

    shown = render_show(letter, None).splitlines()
    start = shown.index("value: 100 bytes, not JSON; the first 64 in hex:")

    assert [
        "  0000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
        "  0010  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f",
        "  0020  20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f",
        "  0030  30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f",
        "",
    ] == shown[start + 1 : start + 6]


# --- A replay cannot loop --------------------------------------------------------------


def test_a_dead_letter_carrying_the_replay_mark_names_the_dead_letter_replayed() -> None:
    """The refused record's `ketenbus-replay-of` (kept by the router) is read as `replay_of`;
    a value that is no dead letter ID is not."""
    marked = parse_dead_letter(_letter(extra={REPLAY_OF: " 1:8 "}))
    garbled = parse_dead_letter(_letter(extra={REPLAY_OF: "../../x"}))
    plain = parse_dead_letter(_letter())

    assert ("1:8", None, None) == (marked.replay_of, garbled.replay_of, plain.replay_of)
    assert "1:8" == replayed_from(marked, [])


@pytest.mark.parametrize(
    "code",
    [
        "malformed-json",
        "oversize",
        "tombstone",
        "nul-character",
        "unsigned",
        "bad-signature",
        "foreign-key",
        "forged-source",
        "wrong-key",
        "quoted-key",
        "duplicate-event-id",
    ],
)
def test_a_refusal_decided_by_the_bytes_a_replay_resends_needs_confirmation(code: str) -> None:
    """A reason a replay of the same key and value meets again is a caution naming the code."""
    caution = replay_caution(parse_dead_letter(_letter(code)))

    assert (
        f"a replay sends the same bytes, so the router refuses it again as {code} ({FUTILE[code]})"
    ) == caution


@pytest.mark.parametrize(
    "code",
    [
        "unknown-agency",
        "unknown-source",
        "unknown-key",
        "not-permitted",
        "unknown-type",
        "invalid-envelope",
        "invalid-data",
        "malformed-headers",
        "processing-failed",
    ],
)
def test_a_refusal_a_change_on_the_bus_can_cure_is_replayed_without_asking(code: str) -> None:
    """A registry entry, a key, holder rights or a contract version can change, and a replay
    carries its own headers only: such a dead letter is replayed without a caution."""
    letter = parse_dead_letter(_letter(code))

    assert None is replay_caution(letter)
    assert (["0:0"], []) == tuple([x.letter.id for x in group] for group in plan_replays([letter]))


def test_the_refusal_of_a_replay_needs_confirmation_naming_the_replayed_dead_letter() -> None:
    """A dead letter marked as the refusal of a replay of 1:8 is a caution that names 1:8."""
    letter = parse_dead_letter(_letter("unknown-key", offset=9))

    assert (
        "it is the refusal of an earlier replay (of dead letter 1:8): replaying it would "
        "replay a replay; replay the original instead"
    ) == replay_caution(letter, "1:8")


def test_in_bulk_the_refusal_of_a_replay_is_held_back_unless_forced() -> None:
    """`plan_replays` holds back the refusal of a replay (by its own mark or by `replay_marks`)
    unless forced, then planned with the caution for the audit; the original is planned."""
    letters = [
        parse_dead_letter(_letter("unknown-key", offset=0)),
        parse_dead_letter(_letter("unknown-key", offset=1)),
        parse_dead_letter(_letter("unknown-key", offset=2, extra={REPLAY_OF: "0:0"})),
    ]
    marks = {"0:0": None, "0:1": "0:0", "0:2": "0:0"}

    plans, held = plan_replays(letters, marks)
    forced, none_held = plan_replays(letters, marks, force=True)

    assert (["0:0"], ["0:1", "0:2"]) == ([p.letter.id for p in plans], [h.letter.id for h in held])
    assert [NeedsConfirmation, NeedsConfirmation] == [type(h) for h in held]
    caution = replay_caution(letters[1], "0:0")
    assert ([None, caution, caution], []) == ([p.despite for p in forced], none_held)
    assert (
        "not replayed: 2 held back (2 because it is the refusal of an earlier replay); "
        "--force replays the refusals of earlier replays too"
    ) == render_refused(held)


def test_in_bulk_a_refusal_no_replay_can_cure_is_never_replayed_even_forced() -> None:
    """Forcing `plan_replays` replays the refusals of replays, never a malformed-json."""
    letter = parse_dead_letter(_letter("malformed-json"))

    plans, refused = plan_replays([letter], force=True)

    assert ([], ["0:0"]) == ([p.letter.id for p in plans], [r.letter.id for r in refused])
    assert isinstance(refused[0], NeedsConfirmation)


def test_the_refused_of_both_kinds_are_a_line_each() -> None:
    """What cannot be replayed and what was held back are counted on a line each."""
    cannot = NotReplayable(parse_dead_letter(_letter(origin=topics.CASES)), "not an outbox")
    held = NeedsConfirmation(parse_dead_letter(_letter("unknown-key")), "a replay's refusal")

    assert [
        "not replayed: 1 that cannot be replayed (1 because not an outbox)",
        "not replayed: 1 held back (1 because a replay's refusal); --force replays the "
        "refusals of earlier replays too",
    ] == render_refused([cannot, held]).splitlines()
