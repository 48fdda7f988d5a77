"""The checks that need no case state (`CaseRouting.check`), and what a refusal produces."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.case import PersonalSection
from contracts.envelope import MAX_EVENT_BYTES
from contracts.registry import AgencyRegistry
from services.router.routing import NIL_CASE, Admitted, CaseRouting
from services.runtime.kafka.clients import Outgoing
from tests._testutil import EventFactory
from tests.services.router.events import (
    BSN,
    CITIZEN,
    full_context,
    outbox_message,
    tampered,
    with_context,
)

Keys = dict[str, AgencyKeys]


@pytest.fixture
def make(signed_registry: AgencyRegistry) -> EventFactory:
    return EventFactory(signed_registry)


def _refused(result: Admitted | list[Outgoing]) -> tuple[Outgoing, Outgoing]:
    """The dead letter and the sender's notice of a refusal."""
    assert isinstance(result, list), f"admitted, not refused: {result}"
    dead, notice = result
    return dead, notice


def _code(result: Admitted | list[Outgoing]) -> str:
    dead, _ = _refused(result)
    return dead.headers[topics.DLQ_REASON_CODE]


def test_a_signed_event_is_admitted_as_sent_by_its_outbox_agency(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    opened = make.opened(case_id, by="uwv")
    value = agency_keys["uwv"].sign(opened)
    routing = CaseRouting(signed_registry)

    admitted = routing.check(outbox_message("uwv", case_id, value))

    assert isinstance(admitted, Admitted)
    assert "uwv" == admitted.agency.code
    assert opened.id == admitted.event.id
    assert json.loads(value) == admitted.document
    assert {} == routing.stats.rejected


def test_an_event_with_sealed_personal_data_is_admitted(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    keys = agency_keys["uwv"]
    sealed = keys.seal(PersonalSection(bsn=BSN), ["gm0363"], signed_registry)
    requested = with_context(
        make.requested(case_id, uuid.uuid4(), "uwv", "gm0363"), full_context("uwv", sealed)
    )

    result = CaseRouting(signed_registry).check(
        outbox_message("uwv", case_id, keys.sign(requested))
    )

    assert isinstance(result, Admitted)


def test_an_unsigned_event_is_refused_as_unsigned_and_the_sender_is_told(
    signed_registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    routing = CaseRouting(signed_registry)

    dead, notice = _refused(
        routing.check(outbox_message("uwv", case_id, make.opened(case_id).to_json()))
    )

    assert "unsigned" == dead.headers[topics.DLQ_REASON_CODE]
    assert "not signed" in dead.headers[topics.DLQ_REASON]
    assert topics.inbox("uwv") == notice.topic
    assert "unsigned" == json.loads(notice.value)["data"]["reason_code"]
    assert {"unsigned": 1} == routing.stats.rejected


def test_a_payload_changed_after_signing_is_refused_as_a_bad_signature(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    signed = agency_keys["uwv"].sign(make.opened(case_id, by="uwv", category="schulden"))
    changed = tampered(signed, lambda e: e["data"].update(category="uitkering"))

    assert "bad-signature" == _code(
        CaseRouting(signed_registry).check(outbox_message("uwv", case_id, changed))
    )


def test_a_signature_that_is_not_ed25519_base64_is_refused_as_a_bad_signature(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    signed = agency_keys["uwv"].sign(make.opened(case_id, by="uwv"))
    forged = tampered(signed, lambda e: e.update(signature="A" * 86 + "=="))

    assert "bad-signature" == _code(
        CaseRouting(signed_registry).check(outbox_message("uwv", case_id, forged))
    )


def test_an_event_signed_with_another_agencys_key_is_refused_as_a_foreign_key(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    value = agency_keys["svb"].sign(make.opened(case_id, by="uwv"))

    dead, _ = _refused(CaseRouting(signed_registry).check(outbox_message("uwv", case_id, value)))

    assert "foreign-key" == dead.headers[topics.DLQ_REASON_CODE]
    assert "'svb'" in dead.headers[topics.DLQ_REASON]


def test_an_event_signed_with_a_key_in_no_registry_is_refused_as_an_unknown_key(
    signed_registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    value = AgencyKeys.generate("uwv").sign(make.opened(case_id, by="uwv"))

    assert "unknown-key" == _code(
        CaseRouting(signed_registry).check(outbox_message("uwv", case_id, value))
    )


def test_another_agencys_signed_event_replayed_in_an_outbox_is_a_forged_source(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    # Validly signed by toeslagen, but written to belastingdienst's outbox.
    value = agency_keys["toeslagen"].sign(make.opened(case_id, by="toeslagen"))

    dead, notice = _refused(
        CaseRouting(signed_registry).check(outbox_message("belastingdienst", case_id, value))
    )

    assert "forged-source" == dead.headers[topics.DLQ_REASON_CODE]
    assert topics.inbox("belastingdienst") == notice.topic


def test_a_type_the_registry_does_not_grant_the_agency_is_refused_as_unauthorised(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    value = agency_keys["cak"].sign(make.requested(case_id, uuid.uuid4(), "cak", "gm0363"))

    dead, _ = _refused(CaseRouting(signed_registry).check(outbox_message("cak", case_id, value)))

    assert "unauthorised-type" == dead.headers[topics.DLQ_REASON_CODE]
    assert "handoff-requested" in dead.headers[topics.DLQ_REASON]


def test_a_message_keyed_other_than_by_its_case_is_refused_as_a_wrong_key(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    value = agency_keys["uwv"].sign(make.opened(case_id, by="uwv"))

    assert "wrong-key" == _code(
        CaseRouting(signed_registry).check(outbox_message("uwv", uuid.uuid4(), value))
    )


def test_a_case_id_key_written_as_a_json_string_is_refused_with_its_own_reason(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    """One spelling per case: the quoted id hashes to another partition than the plain id."""
    case_id = uuid.uuid4()
    value = agency_keys["uwv"].sign(make.opened(case_id, by="uwv"))

    dead, notice = _refused(
        CaseRouting(signed_registry).check(outbox_message("uwv", f'"{case_id}"'.encode(), value))
    )

    assert "quoted-key" == dead.headers[topics.DLQ_REASON_CODE]
    assert f"send the 36 bytes of the id alone ({case_id})" in dead.headers[topics.DLQ_REASON]
    assert "quoted-key" == json.loads(notice.value)["data"]["reason_code"]


def test_unsealed_personal_data_is_refused_and_the_dead_letter_carries_none_of_it(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    clear = full_context("uwv").model_copy(
        update={"personal": PersonalSection(bsn=BSN, name=CITIZEN)}
    )
    value = agency_keys["uwv"].sign(
        with_context(make.requested(case_id, uuid.uuid4(), "uwv", "gm0363"), clear)
    )
    routing = CaseRouting(signed_registry)

    dead, notice = _refused(routing.check(outbox_message("uwv", case_id, value)))

    assert "unsealed-personal-data" == dead.headers[topics.DLQ_REASON_CODE]
    assert "data.context.personal" == dead.headers[topics.DLQ_REDACTED]
    context = json.loads(dead.value)["data"]["context"]
    assert "personal" not in context
    assert clear.model_dump(mode="json")["actions"] == context["actions"]
    for value_out in (dead.value, notice.value):
        assert BSN.encode() not in value_out
        assert CITIZEN.encode() not in value_out


def test_a_topic_that_is_no_registered_outbox_is_refused_without_a_notice(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    value = agency_keys["uwv"].sign(make.opened(case_id, by="uwv"))

    out = CaseRouting(signed_registry).check(
        outbox_message("", case_id, value, topic="agency.nobody.outbox")
    )

    assert isinstance(out, list)
    assert [topics.DLQ] == [o.topic for o in out]
    assert "unknown-agency" == out[0].headers[topics.DLQ_REASON_CODE]


def test_bytes_that_are_no_event_are_dead_lettered_with_their_origin_and_the_sender_is_told(
    signed_registry: AgencyRegistry,
) -> None:
    routing = CaseRouting(signed_registry)

    dead, notice = _refused(routing.check(outbox_message("uwv", None, b"\x00")))

    assert topics.DLQ == dead.topic
    assert {
        topics.DLQ_REASON_CODE: "malformed-json",
        topics.DLQ_ORIGIN_TOPIC: topics.outbox("uwv"),
        topics.DLQ_ORIGIN_PARTITION: "0",
        topics.DLQ_ORIGIN_OFFSET: "42",
        topics.DLQ_REJECTED_BY: "router",
    }.items() <= dead.headers.items()
    assert topics.inbox("uwv") == notice.topic
    assert str(NIL_CASE) == json.loads(notice.value)["subject"]
    assert {"malformed-json": 1} == routing.stats.rejected


def test_a_json_value_that_is_no_object_is_refused_as_no_event_not_as_unsigned(
    signed_registry: AgencyRegistry,
) -> None:
    result = CaseRouting(signed_registry).check(outbox_message("uwv", None, b"[1, 2]"))

    assert "invalid-envelope" == _code(result)


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (lambda e: e.update(subject="123456782"), "invalid-envelope", "subject"),
        (lambda e: e.update(type="nl.overheid.ketenzaken.gossip"), "unknown-type", "type"),
        (lambda e: e["data"].update(to_agency=7), "invalid-data", "data.to_agency"),
    ],
    ids=["bsn-as-subject", "unknown-type", "wrong-data"],
)
def test_an_invalid_event_its_sender_signed_is_refused_naming_the_field(
    signed_registry: AgencyRegistry,
    agency_keys: Keys,
    make: EventFactory,
    mutate: Callable[[dict[str, Any]], None],
    code: str,
    field: str,
) -> None:
    case_id = uuid.uuid4()
    document = json.loads(make.requested(case_id, uuid.uuid4(), "uwv", "gm0363").to_json())
    mutate(document)
    value = agency_keys["uwv"].sign(json.dumps(document).encode())

    dead, notice = _refused(
        CaseRouting(signed_registry).check(outbox_message("uwv", case_id, value))
    )

    assert code == dead.headers[topics.DLQ_REASON_CODE]
    assert dead.headers[topics.DLQ_REASON].startswith(field)
    assert code == json.loads(notice.value)["data"]["reason_code"]


def test_an_event_over_the_size_limit_is_refused_before_it_is_read(
    signed_registry: AgencyRegistry,
) -> None:
    value = b"x" * (MAX_EVENT_BYTES + 1)

    assert "oversize" == _code(
        CaseRouting(signed_registry).check(outbox_message("uwv", None, value))
    )
