"""The wire format: every event type survives a round trip, every bad event is refused clearly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from contracts import (
    EVENT_CLASSES,
    MAX_EVENT_BYTES,
    ActionTaken,
    CaseContext,
    CaseFlag,
    CitizenPromise,
    EscalationLevel,
    EscalationPath,
    EventRejected,
    HandoffRequested,
    OpenDeadline,
    PersonalSection,
    parse_event,
    source_urn,
)
from contracts.case import MoneyAmount
from contracts.events import (
    CaseClosure,
    CaseOpening,
    ContextUpdate,
    DeliveryFailure,
    EscalationAcknowledgement,
    EscalationRaise,
    EscalationRequest,
    EscalationResolution,
    HandoffAcceptance,
    HandoffExpiry,
    HandoffRejection,
    HandoffRequest,
    Notificatie,
    TeamRef,
)

SOURCE = source_urn("00000099000000000013", "uitkeringen")
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
HANDOFF = {"handoff_id": uuid.uuid4(), "from_agency": "uwv", "to_agency": "gm0363"}
ESCALATION = uuid.uuid4()
TEAM = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")

CONTEXT = CaseContext(
    actions=[ActionTaken(at=NOW, agency="uwv", description="Terugvordering gepauzeerd")],
    promises=[CitizenPromise(agency="uwv", promise="Terugbellen", due=date(2025, 3, 21))],
    deadlines=[OpenDeadline(description="Bezwaartermijn", due=date(2025, 4, 25))],
    flags=[CaseFlag(kind="hardship", raised_by="uwv", note="Dreigende huisuitzetting")],
    personal=PersonalSection(
        bsn="123456782", name="J. Jansen", amounts=[MoneyAmount(label="Schuld", cents=123456)]
    ),
)
PATH = EscalationPath(
    levels=[
        EscalationLevel(
            level=1, agency="uwv", team="teamleiding", acknowledge_within=timedelta(hours=8)
        ),
        EscalationLevel(
            level=2,
            agency="gm0363",
            team="regionaal-escalatieteam",
            acknowledge_within=timedelta(days=1),
        ),
    ]
)

HANDOFF_REQUEST = HandoffRequest(
    **HANDOFF, reason="Schuldhulp nodig", deadline=NOW + timedelta(days=2), context=CONTEXT
)

SAMPLE_DATA: dict[str, BaseModel] = {
    "case-opened": CaseOpening(
        category="schulden", summary="Meerdere schulden", context=CONTEXT, escalation_path=PATH
    ),
    "case-context-updated": ContextUpdate(context=CONTEXT, escalation_path=PATH),
    "handoff-requested": HANDOFF_REQUEST,
    "handoff-accepted": HandoffAcceptance(**HANDOFF, note="Wij nemen het over"),
    "handoff-rejected": HandoffRejection(
        **HANDOFF, reason="Niet onze taak", rule_reference="Wgs art. 3"
    ),
    "handoff-expired": HandoffExpiry(**HANDOFF, deadline=NOW),
    "escalation-requested": EscalationRequest(
        reason="Regels pakken hard uit", level=2, rule_reference="Awir art. 26"
    ),
    "escalation-raised": EscalationRaise(
        escalation_id=ESCALATION,
        level=2,
        team=TEAM,
        trigger="handoff-expired",
        cause="Overdracht niet op tijd geaccepteerd",
        acknowledge_by=NOW + timedelta(hours=8),
        skipped_level=1,
        skip_reason="Niet bevestigd",
        flag=CONTEXT.flags[0],
    ),
    "escalation-acknowledged": EscalationAcknowledgement(
        escalation_id=ESCALATION, level=2, team=TEAM, note="Opgepakt"
    ),
    "escalation-resolved": EscalationResolution(
        escalation_id=ESCALATION, team=TEAM, outcome="handoff-forced", handoff_to="gm0363"
    ),
    "case-closed": CaseClosure(outcome="Schuldregeling getroffen"),
    "delivery-failed": DeliveryFailure(
        reason_code="unknown-type",
        reason="type: unknown event type",
        rejected_event_id=str(uuid.uuid4()),
        topic="agency.uwv.outbox",
        partition=0,
        offset=42,
    ),
    "zgw-notificatie": Notificatie(
        afzender="gm0363",
        kanaal="zaken",
        hoofd_object="https://openzaak.example.nl/zaken/api/v1/zaken/5d3c1a7e-0b8f-4c3e-9a4f-2b6d8e1f0a21",
        resource="status",
        resource_url="https://openzaak.example.nl/zaken/api/v1/statussen/9e2b4c6d-1a3f-4e5b-8c7d-0f1e2d3c4b5a",
        actie="create",
        aanmaakdatum=NOW,
        kenmerken={"bronorganisatie": "002220647", "vertrouwelijkheidaanduiding": "openbaar"},
    ),
}


def valid_handoff() -> dict[str, Any]:
    """A valid handoff-requested event as the JSON object an agency would send."""
    event = HandoffRequested.new(source=SOURCE, case_id=uuid.uuid4(), data=HANDOFF_REQUEST)
    document: dict[str, Any] = json.loads(event.to_json())
    return document


def test_every_event_type_has_a_round_trip_sample() -> None:
    """A new event type must get a sample here, so its round trip is tested too."""
    assert sorted(EVENT_CLASSES) == sorted(SAMPLE_DATA)


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_event_survives_the_wire_as_its_own_type(name: str) -> None:
    cls = EVENT_CLASSES[name]
    event = cls.new(
        source=SOURCE,
        case_id=uuid.uuid4(),
        data=SAMPLE_DATA[name],
        sequence=3,
        causationid=uuid.uuid4(),
        time=NOW,
    )

    parsed = parse_event(event.to_json())

    assert cls is type(parsed)
    assert event == parsed


def test_event_of_exactly_the_maximum_size_is_accepted() -> None:
    raw = json.dumps(valid_handoff()).encode()
    padded = raw + b" " * (MAX_EVENT_BYTES - len(raw))

    assert isinstance(parse_event(padded), HandoffRequested)


def _with(**changes: Any) -> bytes:
    document = valid_handoff()
    document.update(changes)
    return json.dumps(document).encode()


def _without(key: str) -> bytes:
    document = valid_handoff()
    del document[key]
    return json.dumps(document).encode()


def _with_data(**changes: Any) -> bytes:
    document = valid_handoff()
    document["data"].update(changes)
    return json.dumps(document).encode()


def _oversize() -> bytes:
    raw = json.dumps(valid_handoff()).encode()
    return raw + b" " * (MAX_EVENT_BYTES + 1 - len(raw))


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        pytest.param(_oversize(), "oversize", "(event)", id="one-byte-over-64KiB"),
        pytest.param(b'{"specversion": "1.0",', "malformed-json", "(event)", id="malformed-json"),
        pytest.param(b"\xff\xfe{}", "malformed-json", "(event)", id="not-utf8"),
        pytest.param(b"[]", "invalid-envelope", "(event)", id="array"),
        pytest.param(b"5", "invalid-envelope", "(event)", id="number"),
        pytest.param(_without("type"), "invalid-envelope", "type", id="missing-type"),
        pytest.param(
            _with(type="nl.overheid.ketenzaken.case-reopened"),
            "unknown-type",
            "type",
            id="unknown-type-with-prefix",
        ),
        pytest.param(
            _with(type="com.example.case-opened"), "unknown-type", "type", id="foreign-type"
        ),
        pytest.param(_with(specversion="0.3"), "invalid-envelope", "specversion", id="specversion"),
        pytest.param(
            _with(source="urn:nld:oin:0000009900000000001:systeem:x"),
            "invalid-envelope",
            "source",
            id="source-oin-19-digits",
        ),
        pytest.param(
            _with(source="urn:nld:kvk:00000099000000000013:systeem:x"),
            "invalid-envelope",
            "source",
            id="source-wrong-prefix",
        ),
        pytest.param(_with(subject="123456782"), "invalid-envelope", "subject", id="bsn-subject"),
        pytest.param(
            _with(time="2025-03-14T09:30:00"), "invalid-envelope", "time", id="time-without-zone"
        ),
        pytest.param(_with(priority="high"), "invalid-envelope", "priority", id="extra-attribute"),
        pytest.param(_with_data(reason=""), "invalid-data", "data.reason", id="empty-data-field"),
        pytest.param(
            _with_data(deadline="2025-03-16"), "invalid-data", "data.deadline", id="data-date"
        ),
        pytest.param(_with_data(to_agency="uwv"), "invalid-data", "data", id="handoff-to-self"),
    ],
)
def test_bad_event_is_refused_with_code_and_field(raw: bytes, code: str, field: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(raw)

    assert (code, field) == (caught.value.code, caught.value.field)
    assert str(caught.value).startswith(f"{field}: ")


def test_unknown_type_inside_the_prefix_lists_the_known_types() -> None:
    with pytest.raises(EventRejected, match="known: case-closed, case-context-updated"):
        parse_event(_with(type="nl.overheid.ketenzaken.case-reopened"))


def test_unknown_type_outside_the_prefix_names_the_prefix() -> None:
    with pytest.raises(EventRejected, match=r"types start with 'nl\.overheid\.ketenzaken\.'"):
        parse_event(_with(type="com.example.case-opened"))


def test_oversize_event_points_to_dataref() -> None:
    with pytest.raises(EventRejected, match="dataref"):
        parse_event(_oversize())


def test_handoff_to_the_holder_itself_says_why() -> None:
    """The model validator's own words reach the sender, without pydantic's prefix."""
    with pytest.raises(EventRejected, match=r"^data: from_agency and to_agency must differ$"):
        parse_event(_with_data(to_agency="uwv"))
