"""`POST /v1/events`: what the gateway takes is on the agency's outbox when it answers, and
what it refuses it says at once, as problem+json. Real broker; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.parse import parse_event, read_json
from contracts.registry import AgencyRegistry
from contracts.signing import verify_signature
from services.gateway import tokens
from services.gateway.app import create_gateway
from services.gateway.intake import BATCH, STRUCTURED
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from tests._testutil import EventFactory, headers_of, read_to_end, read_until

pytestmark = pytest.mark.broker

UWV_OUTBOX = topics.outbox("uwv")
PROBLEM = "application/problem+json"

Keys = dict[str, AgencyKeys]


def _signed(make: EventFactory, keys: AgencyKeys, by: str = "uwv") -> bytes:
    return keys.sign(make.opened(uuid.uuid4(), by=by).to_json())


async def _post(
    gateway: httpx.AsyncClient,
    body: bytes,
    token: str | None,
    media: str = STRUCTURED,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {"content-type": media, **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return await gateway.post("/v1/events", content=body, headers=sent)


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert PROBLEM == response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert response.status_code == body["status"]
    assert body["type"].startswith("https://ketenbus.nl/problems/")
    return body


async def test_a_structured_event_is_on_the_agency_outbox_when_the_202_comes(
    gateway: httpx.AsyncClient,
    kafka: str,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    value = _signed(make, agency_keys["uwv"])
    event = parse_event(value)

    response = await _post(gateway, value, uwv_token)

    assert 202 == response.status_code, response.text
    assert {"accepted": [str(event.id)], "repeated": []} == response.json()
    found = await read_until(kafka, UWV_OUTBOX, lambda r: r.value == value, timeout=5)
    assert [str(event.subject).encode()] == [r.key for r in found]
    assert "application/cloudevents+json" == headers_of(found[0])["content-type"]


async def test_a_binary_mode_event_from_the_cloudevents_sdk_arrives_signed_as_its_agency_sent_it(
    gateway: httpx.AsyncClient,
    kafka: str,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
    signed_registry: AgencyRegistry,
) -> None:
    document = read_json(make.opened(uuid.uuid4(), by="uwv").to_json())
    data = document.pop("data")
    document["time"] = datetime.fromisoformat(document["time"])
    # The agency signs the event as structured mode carries it, then sends it in binary mode.
    structured = to_structured_event(CloudEvent(dict(document), data))
    signed = read_json(agency_keys["uwv"].sign(structured.body))
    attributes = {k: v for k, v in signed.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    binary = to_binary_event(CloudEvent(attributes, data))

    response = await gateway.post(
        "/v1/events",
        content=binary.body,
        headers={**binary.headers, "authorization": f"Bearer {uwv_token}"},
    )

    assert 202 == response.status_code, response.text
    found = await read_until(
        kafka, UWV_OUTBOX, lambda r: read_json(r.value)["id"] == signed["id"], timeout=5
    )
    arrived = parse_event(found[0].value)
    assert signed["subject"] == str(arrived.subject)
    verify_signature(read_json(found[0].value), signed_registry)  # raises if it does not verify


async def test_a_batch_is_taken_whole_each_event_keyed_by_its_own_case(
    gateway: httpx.AsyncClient,
    kafka: str,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    values = [_signed(make, agency_keys["uwv"]) for _ in range(3)]
    events = [parse_event(v) for v in values]
    body = b"[" + b",".join(values) + b"]"

    response = await _post(gateway, body, uwv_token, BATCH)

    assert 202 == response.status_code, response.text
    assert [str(e.id) for e in events] == response.json()["accepted"]
    ids = {str(e.id) for e in events}
    found = await read_until(
        kafka, UWV_OUTBOX, lambda r: read_json(r.value)["id"] in ids, count=3, timeout=5
    )
    assert {(str(e.subject).encode(), str(e.id)) for e in events} == {
        (r.key, read_json(r.value)["id"]) for r in found
    }


async def test_without_a_valid_token_the_answer_is_401_and_nothing_is_sent(
    gateway: httpx.AsyncClient, make: EventFactory, agency_keys: Keys
) -> None:
    value = _signed(make, agency_keys["uwv"])

    for token in (None, "kbg_not-a-token", "not even the shape"):
        response = await _post(gateway, value, token)

        assert 401 == response.status_code
        assert "unauthenticated" in _problem(response)["type"]
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_revoked_token_is_refused(
    gateway: httpx.AsyncClient,
    store: AsyncEngine,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    assert [tokens.digest(uwv_token)] == await tokens.revoke(store, tokens.digest(uwv_token))

    response = await _post(gateway, _signed(make, agency_keys["uwv"]), uwv_token)

    assert 401 == response.status_code


async def test_an_event_of_another_agency_is_403(
    gateway: httpx.AsyncClient,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    value = _signed(make, agency_keys["svb"], by="svb")

    response = await _post(gateway, value, uwv_token)

    assert 403 == response.status_code
    assert "foreign-source" in _problem(response)["type"]


async def test_an_event_over_64_kb_is_413(
    gateway: httpx.AsyncClient,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    document = read_json(_signed(make, agency_keys["uwv"]))
    document["padding"] = "x" * (64 * 1024)

    response = await _post(gateway, json.dumps(document).encode(), uwv_token)

    assert 413 == response.status_code
    assert "64" in _problem(response)["detail"]


async def test_another_media_type_is_415(
    gateway: httpx.AsyncClient,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    response = await _post(gateway, _signed(make, agency_keys["uwv"]), uwv_token, "text/plain")

    assert 415 == response.status_code
    assert "text/plain" in _problem(response)["detail"]


async def test_an_invalid_event_is_400_naming_each_bad_event_and_its_field(
    gateway: httpx.AsyncClient,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    good = _signed(make, agency_keys["uwv"])
    bad = read_json(_signed(make, agency_keys["uwv"]))
    bad["subject"] = "not a uuid"
    body = b"[" + good + b"," + json.dumps(bad).encode() + b", 7]"

    response = await _post(gateway, body, uwv_token, BATCH)

    assert 400 == response.status_code
    errors = _problem(response)["errors"]
    assert [(1, "invalid-envelope", "subject"), (2, "invalid-envelope", "(event)")] == [
        (e["index"], e["reason_code"], e["field"]) for e in errors
    ]


async def test_a_repeated_id_is_answered_as_accepted_and_not_sent_twice(
    gateway: httpx.AsyncClient,
    kafka: str,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    value = _signed(make, agency_keys["uwv"])
    event_id = str(parse_event(value).id)
    # The same event in other whitespace is the same event.
    respaced = json.dumps(read_json(value), indent=2).encode()

    first = await _post(gateway, value, uwv_token)
    again = await _post(gateway, respaced, uwv_token)

    assert (202, 202) == (first.status_code, again.status_code)
    assert {"accepted": [event_id], "repeated": [event_id]} == again.json()
    # Both were answered 202, each only once Kafka held what it sent: all of it is there.
    found = await read_to_end(kafka, [UWV_OUTBOX], lambda r: read_json(r.value)["id"] == event_id)
    assert 1 == len(found)


async def test_the_same_id_with_other_content_is_409(
    gateway: httpx.AsyncClient,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    value = _signed(make, agency_keys["uwv"])
    other = read_json(_signed(make, agency_keys["uwv"]))
    other["id"] = read_json(value)["id"]

    assert 202 == (await _post(gateway, value, uwv_token)).status_code
    response = await _post(gateway, agency_keys["uwv"].sign(json.dumps(other).encode()), uwv_token)

    assert 409 == response.status_code
    assert "id-reused" in _problem(response)["type"]


async def test_the_openapi_document_describes_every_answer_of_the_ingress(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/openapi.json")

    assert 200 == response.status_code
    answers = response.json()["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "400", "401", "403", "409", "413", "415", "429"} == set(answers)


async def test_beyond_the_agency_rate_the_answer_is_429_with_retry_after(
    kafka: str,
    settings: Settings,
    signed_registry: AgencyRegistry,
    store: AsyncEngine,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    slow = settings.model_copy(update={"gateway_rate": 1.0, "gateway_burst": 2})
    broker = make_broker(slow, kafka, client_id="ketenbus-gateway-rate")
    await broker.start()
    transport = httpx.ASGITransport(app=create_gateway(slow, signed_registry, store, broker))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answers = [
                await _post(client, _signed(make, agency_keys["uwv"]), uwv_token) for _ in range(3)
            ]
    finally:
        await broker.stop()

    assert [202, 202, 429] == [a.status_code for a in answers]
    assert "rate-exceeded" in _problem(answers[2])["type"]
    assert 1 <= int(answers[2].headers["retry-after"]) <= 2


async def test_requests_in_hand_at_once_share_store_visits_and_are_each_answered_as_alone(
    gateway: httpx.AsyncClient,
    kafka: str,
    store: AsyncEngine,
    uwv_token: str,
    make: EventFactory,
    agency_keys: Keys,
) -> None:
    """Twenty fresh events, a repeat of an earlier one, a reused id and a revoked token, all
    at once: each gets the answer it would get on its own."""
    keys = agency_keys["uwv"]
    earlier = _signed(make, keys)
    assert 202 == (await _post(gateway, earlier, uwv_token)).status_code
    reused = read_json(_signed(make, keys))
    reused["id"] = read_json(earlier)["id"]
    revoked = await tokens.issue(store, "uwv", "revoked")
    await tokens.revoke(store, tokens.digest(revoked))
    fresh = [_signed(make, keys) for _ in range(20)]

    answers = await asyncio.gather(
        *(_post(gateway, value, uwv_token) for value in fresh),
        _post(gateway, earlier, uwv_token),
        _post(gateway, keys.sign(json.dumps(reused).encode()), uwv_token),
        _post(gateway, fresh[0], revoked),
    )

    assert [202] * 21 + [409, 401] == [a.status_code for a in answers]
    assert [[]] * 20 + [[read_json(earlier)["id"]]] == [a.json()["repeated"] for a in answers[:21]]
    ids = {read_json(value)["id"] for value in fresh}
    found = await read_to_end(kafka, [UWV_OUTBOX], lambda r: read_json(r.value)["id"] in ids)
    assert ids == {read_json(r.value)["id"] for r in found}
    assert 20 == len(found)
