"""The routing decision on its own: who receives an event, and what a refusal produces."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from contracts import topics
from contracts.envelope import source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    EscalationResolution,
    EscalationResolved,
    HandoffRequest,
    HandoffRequested,
    TeamRef,
)
from contracts.registry import AgencyRegistry
from services.router.routing import NIL_CASE, CaseRouting, OutboxMessage


def _message(topic: str, key: object, value: bytes) -> OutboxMessage:
    return OutboxMessage(topic, 0, 42, str(key).encode() if key else None, value)


def _handoff(registry: AgencyRegistry, case_id: uuid.UUID) -> bytes:
    sender = registry.agency("belastingdienst")
    assert sender is not None
    return HandoffRequested.new(
        source=source_urn(sender.oin, "inning"),
        case_id=case_id,
        data=HandoffRequest(
            handoff_id=uuid.uuid4(),
            from_agency="belastingdienst",
            to_agency="gm0363",
            reason="Doorverwijzing",
            deadline=datetime.now(UTC) + timedelta(days=1),
        ),
    ).to_json()


def test_a_handoff_goes_to_the_case_log_and_the_receiver_only(registry: AgencyRegistry) -> None:
    case_id = uuid.uuid4()
    routing = CaseRouting(registry)

    out = routing.route(
        _message(topics.outbox("belastingdienst"), case_id, _handoff(registry, case_id))
    )

    assert [topics.CASES, topics.inbox("gm0363")] == [o.topic for o in out]
    assert {str(case_id).encode()} == {o.key for o in out}
    assert 1 == routing.stats.routed


def test_subscribers_of_a_type_receive_it_but_not_its_sender(registry: AgencyRegistry) -> None:
    case_id = uuid.uuid4()
    cjib = registry.agency("cjib")
    assert cjib is not None
    closed = CaseClosed.new(
        source=source_urn(cjib.oin, "inning"), case_id=case_id, data=CaseClosure(outcome="Betaald")
    ).to_json()

    out = CaseRouting(registry).route(_message(topics.outbox("cjib"), case_id, closed))

    subscribers = {a.code for a, _ in registry.subscribers("case-closed")} - {"cjib"}
    assert {topics.inbox(code) for code in subscribers} == {o.topic for o in out[1:]}


def test_a_refusal_is_dead_lettered_with_its_origin_and_notified_to_the_sender(
    registry: AgencyRegistry,
) -> None:
    routing = CaseRouting(registry)

    dead, notice = routing.route(_message(topics.outbox("uwv"), None, b"\x00"))

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


def test_a_topic_that_is_no_registered_outbox_is_refused_without_a_notice(
    registry: AgencyRegistry,
) -> None:
    out = CaseRouting(registry).route(_message("agency.nobody.outbox", None, b"{}"))

    assert [topics.DLQ] == [o.topic for o in out]
    assert "unknown-agency" == out[0].headers[topics.DLQ_REASON_CODE]


def test_a_case_id_key_written_as_a_json_string_is_accepted(registry: AgencyRegistry) -> None:
    case_id = uuid.uuid4()
    message = OutboxMessage(
        topics.outbox("belastingdienst"), 0, 1, f'"{case_id}"'.encode(), _handoff(registry, case_id)
    )

    out = CaseRouting(registry).route(message)

    assert [topics.CASES, topics.inbox("gm0363")] == [o.topic for o in out]
    assert str(case_id).encode() == out[0].key


def test_a_forced_handoff_reaches_the_agency_that_now_holds_the_case(
    registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    minszw = registry.agency("minszw")
    assert minszw is not None
    resolved = EscalationResolved.new(
        source=source_urn(minszw.oin, "maatwerkloket"),
        case_id=case_id,
        data=EscalationResolution(
            escalation_id=uuid.uuid4(),
            team=TeamRef(agency="minszw", team="maatwerkloket"),
            outcome="handoff-forced",
            handoff_to="gm0363",
        ),
    ).to_json()

    out = CaseRouting(registry).route(_message(topics.outbox("minszw"), case_id, resolved))

    assert topics.inbox("gm0363") in {o.topic for o in out}
