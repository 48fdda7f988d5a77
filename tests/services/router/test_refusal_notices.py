"""What a refusal tells: the notice names the refused event, the dead letter keeps what was sent.

And the inputs no agency may send, whoever else is on the bus: a tombstone,
header values that are not text, JSON nested beyond the bound, a BSN in any
text, a NUL character.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from contracts.screening import MAX_DEPTH
from services.router.routing import NIL_CASE, Admitted, CaseRouting, OutboxMessage
from services.runtime.kafka.clients import Outgoing, _headers
from tests._testutil import EventFactory
from tests.services.router.events import BSN, outbox_message, tampered

Keys = dict[str, AgencyKeys]


@pytest.fixture
def make(signed_registry: AgencyRegistry) -> EventFactory:
    return EventFactory(signed_registry)


@pytest.fixture
def routing(signed_registry: AgencyRegistry) -> CaseRouting:
    return CaseRouting(signed_registry)


def _refused(result: Admitted | list[Outgoing]) -> tuple[Outgoing, dict[str, Any]]:
    """The dead letter and the sender's notice (as JSON) of a refusal."""
    assert isinstance(result, list), f"admitted, not refused: {result}"
    dead, notice = result
    assert topics.DLQ == dead.topic
    return dead, json.loads(notice.value)


def _with_headers(message: OutboxMessage, *headers: tuple[str, bytes | None]) -> OutboxMessage:
    return OutboxMessage(
        message.topic, message.partition, message.offset, message.key, message.value, headers
    )


def test_a_bad_signature_notice_names_the_event_its_bytes_claim_and_says_it_is_unverified(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """Refused before anything is believed, the event is still named: id, type, case, causation."""
    case_id = uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    changed = tampered(agency_keys["uwv"].sign(opened), lambda e: e["data"].update(summary="x"))

    dead, notice = _refused(routing.check(outbox_message("uwv", case_id, changed)))

    assert "bad-signature" == dead.headers[topics.DLQ_REASON_CODE]
    assert str(case_id) == notice["subject"]
    assert str(opened.id) == notice["causationid"]
    assert {
        "reason_code": "bad-signature",
        "rejected_event_id": str(opened.id),
        "rejected_event_type": "nl.overheid.ketenzaken.case-opened",
        "unverified": True,
    }.items() <= notice["data"].items()


def test_an_event_signed_with_another_agencys_key_is_named_in_its_notice(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """A foreign key is refused at the signature check, and the notice names the event."""
    case_id = uuid.uuid4()
    opened = make.opened(case_id, by="uwv")

    _, notice = _refused(
        routing.check(outbox_message("uwv", case_id, agency_keys["svb"].sign(opened)))
    )

    assert "foreign-key" == notice["data"]["reason_code"]
    assert str(opened.id) == notice["data"]["rejected_event_id"]
    assert notice["data"]["unverified"] is True


def test_a_signed_but_invalid_event_is_named_as_verified(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """An event whose signature verified names its id as sent by its agency, not unverified."""
    case_id = uuid.uuid4()
    document = json.loads(make.opened(case_id, by="uwv").to_json())
    document["data"]["category"] = 7
    value = agency_keys["uwv"].sign(json.dumps(document).encode())

    _, notice = _refused(routing.check(outbox_message("uwv", case_id, value)))

    assert "invalid-data" == notice["data"]["reason_code"]
    assert document["id"] == notice["data"]["rejected_event_id"]
    assert notice["data"]["unverified"] is False


def test_an_id_that_is_no_uuid_is_not_named_and_its_text_goes_nowhere(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """Only the shapes the envelope allows are read from unverified bytes: no free text leaks."""
    case_id = uuid.uuid4()
    value = tampered(
        agency_keys["uwv"].sign(make.opened(case_id, by="uwv")),
        lambda e: e.update(id=f"BSN {BSN}", type=f"Petra {BSN}"),
    )

    result = routing.check(outbox_message("uwv", case_id, value))
    _, notice = _refused(result)

    # Optional attributes without a value are left out, not sent as null.
    assert "rejected_event_id" not in notice["data"]
    assert "rejected_event_type" not in notice["data"]
    assert BSN.encode() not in result[1].value  # type: ignore[index]


def test_a_tombstone_is_refused_as_a_tombstone_and_the_sender_is_told(
    routing: CaseRouting,
) -> None:
    """A record without a value is no event: its own reason, a notice, no TypeError."""
    case_id = uuid.uuid4()

    dead, notice = _refused(routing.check(outbox_message("uwv", case_id, None)))  # type: ignore[arg-type]

    assert "tombstone" == dead.headers[topics.DLQ_REASON_CODE]
    assert b"" == dead.value
    assert "tombstone" == notice["data"]["reason_code"]
    assert str(case_id) == notice["subject"]


def test_a_header_value_that_is_not_utf8_refuses_that_record_naming_the_header_and_event(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """Header values must be text; the record is refused alone, its event named (unverified)."""
    case_id = uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    message = _with_headers(
        outbox_message("uwv", case_id, agency_keys["uwv"].sign(opened)),
        ("content-type", b"application/cloudevents+json"),
        ("trace", b"\xff\xfe\x00"),
    )

    dead, notice = _refused(routing.check(message))

    assert "malformed-headers" == dead.headers[topics.DLQ_REASON_CODE]
    assert "'trace'" in dead.headers[topics.DLQ_REASON]
    assert str(opened.id) == notice["data"]["rejected_event_id"]
    assert notice["data"]["unverified"] is True
    # The dead letter keeps the headers as they were sent, bad bytes and all.
    assert ("trace", b"\xff\xfe\x00") in _headers(dead)


def test_a_null_header_value_is_no_refusal(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """Kafka allows a header without a value; it breaks nothing, so nothing is refused."""
    case_id = uuid.uuid4()
    message = _with_headers(
        outbox_message("uwv", case_id, agency_keys["uwv"].sign(make.opened(case_id, by="uwv"))),
        ("marker", None),
    )

    assert isinstance(routing.check(message), Admitted)


def test_a_dead_letter_keeps_the_senders_headers_but_not_those_the_bus_writes(
    routing: CaseRouting, make: EventFactory
) -> None:
    """The content type the sender sent is on its dead letter; a forged reason header is not."""
    case_id = uuid.uuid4()
    message = _with_headers(
        outbox_message("uwv", case_id, make.opened(case_id).to_json()),
        ("content-type", b"application/cloudevents+json"),
        ("x-system", b"zaaksysteem-3"),
        (topics.DLQ_REASON_CODE, b"all-fine"),
    )

    dead, _ = _refused(routing.check(message))
    written = _headers(dead)

    assert [b"application/cloudevents+json"] == [v for n, v in written if n == "content-type"]
    assert ("x-system", b"zaaksysteem-3") in written
    assert [b"unsigned"] == [v for n, v in written if n == topics.DLQ_REASON_CODE]


def test_json_nested_ten_thousand_deep_is_refused_as_malformed_at_once(
    routing: CaseRouting,
) -> None:
    """Depth is bounded before parsing: a refusal, not a RecursionError, and quickly."""
    value = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    started = time.monotonic()

    dead, notice = _refused(routing.check(outbox_message("uwv", None, value)))

    assert "malformed-json" == dead.headers[topics.DLQ_REASON_CODE]
    assert f"nested more than {MAX_DEPTH} deep" in dead.headers[topics.DLQ_REASON]
    assert str(NIL_CASE) == notice["subject"]
    assert time.monotonic() - started < 5


def test_a_bsn_written_in_a_summary_is_refused_and_quarantined_without_it(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """Any text, not only the personal section: a BSN in clear is refused and removed."""
    case_id = uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    document = json.loads(opened.to_json())
    document["data"]["summary"] = f"Schuldhulp voor BSN {BSN}"
    value = agency_keys["uwv"].sign(json.dumps(document).encode())

    result = routing.check(outbox_message("uwv", case_id, value))
    dead, notice = _refused(result)

    assert "unsealed-personal-data" == dead.headers[topics.DLQ_REASON_CODE]
    assert "data.summary" == dead.headers[topics.DLQ_REDACTED]
    assert "Schuldhulp voor BSN [BSN removed]" == json.loads(dead.value)["data"]["summary"]
    assert BSN.encode() not in dead.value
    assert BSN.encode() not in result[1].value  # type: ignore[index]
    assert str(opened.id) == notice["data"]["rejected_event_id"]


def test_nine_digits_that_fail_the_eleven_test_are_no_bsn(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """A file number of nine digits is text like any other: admitted."""
    case_id = uuid.uuid4()
    document = json.loads(make.opened(case_id, by="uwv").to_json())
    document["data"]["summary"] = "Dossier 123456789"
    value = agency_keys["uwv"].sign(json.dumps(document).encode())

    assert isinstance(routing.check(outbox_message("uwv", case_id, value)), Admitted)


def test_a_nul_character_in_a_text_is_refused_naming_the_field(
    routing: CaseRouting, agency_keys: Keys, make: EventFactory
) -> None:
    """U+0000 cannot be stored by PostgreSQL: refused before it reaches the case log."""
    case_id = uuid.uuid4()
    document = json.loads(make.opened(case_id, by="uwv").to_json())
    document["data"]["summary"] = "Schuld\u0000hulp"
    value = agency_keys["uwv"].sign(json.dumps(document).encode())

    dead, notice = _refused(routing.check(outbox_message("uwv", case_id, value)))

    assert "nul-character" == dead.headers[topics.DLQ_REASON_CODE]
    assert dead.headers[topics.DLQ_REASON].startswith("data.summary:")
    assert "nul-character" == notice["data"]["reason_code"]
