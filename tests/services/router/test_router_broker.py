"""The router against the real embedded broker: what reaches which topic, and what is refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import topics
from contracts.registry import AgencyRegistry
from services.router.app import create_router
from services.router.routing import CaseRouting
from services.runtime.settings import Settings
from tests.kafka_helpers import keyed, produce, read_until

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
async def router(
    kafka: str, settings: Settings, registry: AgencyRegistry
) -> AsyncIterator[CaseRouting]:
    routing = CaseRouting(registry)
    broker = create_router(settings, registry, kafka, routing=routing)
    await broker.start()
    yield routing
    await broker.stop()


def _handoff_json(
    registry: AgencyRegistry,
    case_id: uuid.UUID,
    *,
    sender: str = "belastingdienst",
    receiver: str = "gm0363",
    oin: str | None = None,
) -> dict[str, Any]:
    """A handoff request written by hand, as a system without the project's code would."""
    agency = registry.agency(sender)
    assert agency is not None
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:nld:oin:{oin or agency.oin}:systeem:inning",
        "type": "nl.overheid.ketenzaken.handoff-requested",
        "subject": str(case_id),
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "correlationid": str(case_id),
        "sequence": 1,
        "data": {
            "handoff_id": str(uuid.uuid4()),
            "from_agency": sender,
            "to_agency": receiver,
            "reason": "Doorverwijzing naar schuldhulpverlening",
            "deadline": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
    }


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_a_raw_handoff_reaches_the_receivers_inbox_and_the_case_log(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    event = json.dumps(_handoff_json(registry, case_id)).encode()
    await produce(kafka, topics.outbox("belastingdienst"), [(str(case_id).encode(), event)])

    inbox = await read_until(kafka, topics.inbox("gm0363"), keyed(case_id))
    log = await read_until(kafka, topics.CASES, keyed(case_id))

    assert [event] == [r.value for r in inbox]
    assert [event] == [r.value for r in log]


async def test_the_sender_does_not_get_its_own_handoff_back(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    event = json.dumps(_handoff_json(registry, case_id)).encode()
    await produce(kafka, topics.outbox("belastingdienst"), [(str(case_id).encode(), event)])
    await read_until(kafka, topics.inbox("gm0363"), keyed(case_id))

    assert [] == await read_until(kafka, topics.inbox("belastingdienst"), keyed(case_id), timeout=1)


async def test_a_forged_source_goes_to_the_dlq_with_its_reason_and_the_sender_is_told(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    toeslagen = registry.agency("toeslagen")
    assert toeslagen is not None
    forged = json.dumps(_handoff_json(registry, case_id, oin=toeslagen.oin)).encode()
    await produce(kafka, topics.outbox("belastingdienst"), [(str(case_id).encode(), forged)])

    (dead,) = await read_until(kafka, topics.DLQ, keyed(case_id))
    (notice,) = await read_until(kafka, topics.inbox("belastingdienst"), keyed(case_id))
    headers = _headers(dead)

    assert forged == dead.value
    assert "forged-source" == headers[topics.DLQ_REASON_CODE]
    assert toeslagen.oin in headers[topics.DLQ_REASON]
    assert topics.outbox("belastingdienst") == headers[topics.DLQ_ORIGIN_TOPIC]
    assert headers[topics.DLQ_ORIGIN_OFFSET].isdigit()
    assert "nl.overheid.ketenzaken.delivery-failed" == json.loads(notice.value)["type"]
    assert "forged-source" == json.loads(notice.value)["data"]["reason_code"]
    assert [] == await read_until(kafka, topics.CASES, keyed(case_id), timeout=1)
    assert [] == await read_until(kafka, topics.inbox("gm0363"), keyed(case_id), timeout=1)


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (lambda e: b"{not json", "malformed-json", "(event)"),
        (
            lambda e: json.dumps({**e, "subject": "123456782"}).encode(),
            "invalid-envelope",
            "subject",
        ),
        (
            lambda e: json.dumps({**e, "type": "nl.overheid.ketenzaken.gossip"}).encode(),
            "unknown-type",
            "type",
        ),
        (
            lambda e: json.dumps({**e, "data": {**e["data"], "to_agency": 7}}).encode(),
            "invalid-data",
            "data.to_agency",
        ),
        (lambda e: b"x" * 70_000, "oversize", "(event)"),
    ],
    ids=["malformed", "bsn-as-subject", "unknown-type", "wrong-data", "oversize"],
)
async def test_an_invalid_event_goes_to_the_dlq_naming_the_field_and_the_sender_is_told(
    kafka: str, router: CaseRouting, registry: AgencyRegistry, mutate: Any, code: str, field: str
) -> None:
    case_id = uuid.uuid4()
    bad = mutate(_handoff_json(registry, case_id))
    await produce(kafka, topics.outbox("belastingdienst"), [(str(case_id).encode(), bad)])

    (dead,) = await read_until(kafka, topics.DLQ, keyed(case_id))
    (notice,) = await read_until(kafka, topics.inbox("belastingdienst"), keyed(case_id))

    assert code == _headers(dead)[topics.DLQ_REASON_CODE]
    assert _headers(dead)[topics.DLQ_REASON].startswith(field)
    assert code == json.loads(notice.value)["data"]["reason_code"]


async def test_an_agency_may_not_emit_a_type_the_registry_does_not_grant(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    event = _handoff_json(registry, case_id, sender="cak", receiver="gm0363")
    await produce(
        kafka, topics.outbox("cak"), [(str(case_id).encode(), json.dumps(event).encode())]
    )

    (dead,) = await read_until(kafka, topics.DLQ, keyed(case_id))

    assert "unauthorised-type" == _headers(dead)[topics.DLQ_REASON_CODE]


async def test_a_message_keyed_other_than_by_its_case_is_refused(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id, other = uuid.uuid4(), uuid.uuid4()
    event = json.dumps(_handoff_json(registry, case_id)).encode()
    await produce(kafka, topics.outbox("belastingdienst"), [(str(other).encode(), event)])

    (dead,) = await read_until(kafka, topics.DLQ, keyed(other))

    assert "wrong-key" == _headers(dead)[topics.DLQ_REASON_CODE]


async def test_the_router_keeps_routing_after_bad_input(
    kafka: str, router: CaseRouting, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    good = json.dumps(_handoff_json(registry, case_id)).encode()
    garbage: list[tuple[bytes | None, bytes]] = [(None, b"\x00\xff" * n) for n in range(1, 20)]
    await produce(
        kafka, topics.outbox("belastingdienst"), [*garbage, (str(case_id).encode(), good)]
    )

    (delivered,) = await read_until(kafka, topics.inbox("gm0363"), keyed(case_id))

    assert good == delivered.value
