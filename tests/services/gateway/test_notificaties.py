"""`POST /api/v1/notificaties`: a message as Open Zaak sends it is on the subscribers' inboxes,
audited, when the gateway answers 201; what is wrong is said at once. Real broker; SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.events import ZgwNotificatie
from contracts.parse import parse_event, read_json
from contracts.zgw import case_of_zaak
from services.audit import verify
from services.gateway import tokens
from tests._testutil import headers_of, read_until

pytestmark = pytest.mark.broker

OPEN_ZAAK = "https://openzaak.gm0363.example.nl"
PROBLEM = "application/problem+json"
SUBSCRIBER_INBOX = topics.inbox("belastingdienst")
"""deploy/agencies.yaml: belastingdienst subscribes to zgw-notificatie, gm0363 emits it."""


def zaak_message(
    zaak: uuid.UUID, *, resource: str = "zaak", actie: str = "create", at: datetime | None = None
) -> dict[str, Any]:
    """A notification as Open Zaak's `notifications` module sends it for a zaak."""
    zaak_url = f"{OPEN_ZAAK}/zaken/api/v1/zaken/{zaak}"
    resource_url = (
        zaak_url if resource == "zaak" else f"{OPEN_ZAAK}/zaken/api/v1/statussen/{uuid.uuid4()}"
    )
    return {
        "kanaal": "zaken",
        "hoofdObject": zaak_url,
        "resource": resource,
        "resourceUrl": resource_url,
        "actie": actie,
        "aanmaakdatum": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "kenmerken": {
            "bronorganisatie": "002220647",
            "zaaktype": f"{OPEN_ZAAK}/catalogi/api/v1/zaaktypen/{uuid.uuid4()}",
            "vertrouwelijkheidaanduiding": "openbaar",
        },
    }


@pytest.fixture
async def zaaksysteem(store: AsyncEngine) -> str:
    """The token gm0363's Open Zaak sends with (its NRC `Authorization` header)."""
    return await tokens.issue(store, "gm0363", "open zaak")


async def _notify(
    gateway: httpx.AsyncClient,
    message: dict[str, Any] | bytes,
    token: str | None,
    media: str = "application/json",
) -> httpx.Response:
    headers = {"content-type": media}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return await gateway.post("/api/v1/notificaties", content=body, headers=headers)


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (status, PROBLEM) == (response.status_code, response.headers["content-type"])
    body: dict[str, Any] = response.json()
    assert f"https://ketenbus.nl/problems/{code}" == body["type"]
    return body


async def test_a_zaak_notification_is_on_the_subscribers_inbox_and_audited_when_answered(
    gateway: httpx.AsyncClient, kafka: str, store: AsyncEngine, zaaksysteem: str
) -> None:
    """201 echoes the message; the subscriber's inbox holds it as a typed event on the zaak's
    case id, from the gateway for gm0363, and the audit trail names that delivery."""
    zaak = uuid.uuid4()
    message = zaak_message(zaak)

    answer = await _notify(gateway, message, zaaksysteem)

    assert 201 == answer.status_code
    assert message == answer.json()
    event_id = answer.headers["ketenbus-event-id"]
    found = await read_until(
        kafka, SUBSCRIBER_INBOX, lambda r: read_json(r.value)["id"] == event_id, timeout=5
    )
    assert 1 == len(found)
    event = parse_event(found[0].value)
    assert isinstance(event, ZgwNotificatie)
    case_id = case_of_zaak(message["hoofdObject"])
    assert (case_id, str(case_id).encode()) == (event.subject, found[0].key)
    assert ("gm0363", "zaken", "create") == (
        event.data.afzender,
        event.data.kanaal,
        event.data.actie,
    )
    assert event.source.endswith(":systeem:ketenbus-gateway")
    assert message["kenmerken"] == event.data.kenmerken
    assert "application/cloudevents+json" == headers_of(found[0])["content-type"]
    audits = await read_until(
        kafka, topics.AUDIT, lambda r: read_json(r.value)["event_id"] == event_id, timeout=5
    )
    record = read_json(audits[0].value)
    assert ("belastingdienst", "zgw-notificatie", []) == (
        record["receiver"],
        record["event_type"],
        record["fields"],
    )
    report = await verify(store)
    assert (True, 1) == (report.intact, report.records)


async def test_the_same_message_sent_again_is_answered_again_and_delivered_once(
    gateway: httpx.AsyncClient, kafka: str, zaaksysteem: str
) -> None:
    """A Notificaties client retries what it had no answer for: the second 201 names the same
    event, and the inbox holds one copy."""
    message = zaak_message(uuid.uuid4())

    first = await _notify(gateway, message, zaaksysteem)
    again = await _notify(gateway, message, zaaksysteem)

    assert (201, 201) == (first.status_code, again.status_code)
    event_id = first.headers["ketenbus-event-id"]
    assert event_id == again.headers["ketenbus-event-id"]
    found = await read_until(
        kafka, SUBSCRIBER_INBOX, lambda r: read_json(r.value)["id"] == event_id, count=2, timeout=3
    )
    assert 1 == len(found)


async def test_the_notifications_of_one_zaak_share_its_key_in_the_order_they_were_made(
    gateway: httpx.AsyncClient, kafka: str, zaaksysteem: str
) -> None:
    """A zaak created, then a status set on it: one key (one partition), sequence increasing."""
    zaak = uuid.uuid4()
    at = datetime.now(UTC)
    created = zaak_message(zaak, at=at)
    status = zaak_message(zaak, resource="status", at=at + timedelta(milliseconds=3))

    ids = [
        (await _notify(gateway, m, zaaksysteem)).headers["ketenbus-event-id"]
        for m in (created, status)
    ]

    found = await read_until(
        kafka, SUBSCRIBER_INBOX, lambda r: read_json(r.value)["id"] in ids, count=2, timeout=5
    )
    events = sorted((parse_event(r.value) for r in found), key=lambda e: e.sequence)
    assert ids == [str(e.id) for e in events]
    assert {str(case_of_zaak(created["hoofdObject"])).encode()} == {r.key for r in found}
    assert ["zaak", "status"] == [e.data.resource for e in events if isinstance(e, ZgwNotificatie)]


async def test_an_agency_the_registry_does_not_let_send_notifications_is_refused(
    gateway: httpx.AsyncClient, uwv_token: str
) -> None:
    """uwv emits no zgw-notificatie in the registry: 403, and nothing goes out."""
    answer = await _notify(gateway, zaak_message(uuid.uuid4()), uwv_token)

    body = _problem(answer, 403, "unauthorised-type")
    assert "zgw-notificatie" in body["detail"]


async def test_a_notification_without_a_valid_token_is_refused(gateway: httpx.AsyncClient) -> None:
    """No bearer token: 401 with WWW-Authenticate, as on /v1/events."""
    answer = await _notify(gateway, zaak_message(uuid.uuid4()), None)

    _problem(answer, 401, "unauthenticated")
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_an_invalid_message_is_refused_naming_each_field_as_zgw_clients_read_it(
    gateway: httpx.AsyncClient, zaaksysteem: str
) -> None:
    """400 with `invalidParams` (name, code, reason) in the API's own field names."""
    message = zaak_message(uuid.uuid4())
    del message["kanaal"]
    message["hoofdObject"] = "not a url"

    answer = await _notify(gateway, message, zaaksysteem)

    body = _problem(answer, 400, "invalid-notificatie")
    assert {"kanaal", "hoofdObject"} == {p["name"] for p in body["invalidParams"]}


async def test_a_citizen_service_number_in_a_kenmerk_is_refused_but_an_rsin_passes(
    gateway: httpx.AsyncClient, zaaksysteem: str
) -> None:
    """bronorganisatie holds an RSIN (which passes the BSN's eleven test); any other kenmerk
    with such a number is personal data in clear: 400 naming it."""
    message = zaak_message(uuid.uuid4())
    message["kenmerken"]["aanvrager"] = "111222333"

    answer = await _notify(gateway, message, zaaksysteem)

    body = _problem(answer, 400, "invalid-notificatie")
    assert [("kenmerken.aanvrager", "unsealed-personal-data")] == [
        (p["name"], p["code"]) for p in body["invalidParams"]
    ]


@pytest.mark.parametrize(
    ("body", "media", "status", "code"),
    [
        (b"kanaal=zaken", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        (b"{" + b" " * 70_000 + b"}", "application/json", 413, "event-too-large"),
        (b"[1, 2", "application/json", 400, "invalid-notificatie"),
    ],
    ids=["form", "over-64-kb", "not-json"],
)
async def test_a_body_that_is_no_notificaties_message_is_refused(
    gateway: httpx.AsyncClient, zaaksysteem: str, body: bytes, media: str, status: int, code: str
) -> None:
    """The media type, the size and the JSON are checked before anything is sent."""
    answer = await _notify(gateway, body, zaaksysteem, media)

    _problem(answer, status, code)
