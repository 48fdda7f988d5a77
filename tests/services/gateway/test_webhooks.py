"""Webhooks: what arrives in an agency's inbox is POSTed to its receiver until it answers
2xx, in case order, signed, and given up to a dead letter only after the horizon. A real
HTTP receiver on loopback answers as each test scripts it; real broker; SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from contracts.zgw import NotificatieMessage, notificatie_event
from services.gateway import subscriptions, tokens
from services.gateway.dispatch import Dispatcher
from services.gateway.inbox import InboxIntake
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.kafka.embedded import free_port
from services.runtime.process.http import http_server
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import webhook_attempts, webhook_deliveries
from services.webhook_deliveries import replay
from tests._testutil import EngineMaker, EventFactory, headers_of, read_until

pytestmark = pytest.mark.broker

RECEIVER = "gm0363"
SENDER = "uwv"


@dataclass
class Receiver:
    """An HTTP receiver on loopback: answers POSTs as `script` says, then 200; keeps each."""

    script: list[Any] = field(default_factory=list)
    by_body: dict[bytes, list[Any]] = field(default_factory=dict)
    """Answers for one event's body, before `script`'s."""
    allowed_origin: str | None = "ketenbus"
    received: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            headers = {"WebHook-Allowed-Origin": self.allowed_origin} if self.allowed_origin else {}
            return Response(status_code=200, headers=headers)
        body = await request.body()
        self.received.append((time.monotonic(), dict(request.headers), body))
        own = self.by_body.get(body)
        answer = own.pop(0) if own else self.script.pop(0) if self.script else 200
        if answer == "hang":
            await asyncio.sleep(2)
            return Response(status_code=200)
        if isinstance(answer, tuple):
            status, headers = answer
            return Response(status_code=status, headers=headers)
        return Response(status_code=answer)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hook", found.endpoint, methods=["POST", "OPTIONS"])])
    server = http_server(app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # 5 s at most
        if server.started:
            break
        await asyncio.sleep(0.01)
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_retry_base_s": 0.05,
            "webhook_timeout_s": 0.5,
            "webhook_horizon": timedelta(seconds=30),
        }
    )


@pytest.fixture
async def broker(kafka: str, quick: Settings) -> AsyncIterator[KafkaBroker]:
    made = make_broker(quick, kafka, client_id="ketenbus-gateway-webhooks")
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as made:
        yield made


Subscribe = Callable[..., Any]


async def _subscribe(
    store: AsyncEngine,
    registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    **options: Any,
) -> subscriptions.Subscription:
    return await subscriptions.subscribe(
        store, registry, client, agency=RECEIVER, callback_url=receiver.url, **options
    )


_offsets = iter(range(1_000_000))


async def _arrive(store: AsyncEngine, values: list[bytes]) -> None:
    """As if the router had put `values` in the receiver's inbox and the gateway read them."""
    records = [
        SimpleNamespace(topic=topics.inbox(RECEIVER), partition=0, offset=next(_offsets), value=v)
        for v in values
    ]
    await InboxIntake(store).take(records)


async def _until(dispatcher: Dispatcher, done: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await dispatcher.round()
        if await done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not done in {timeout} s")


async def _statuses(store: AsyncEngine) -> list[str]:
    async with store.connect() as connection:
        query = select(webhook_deliveries.c.status).order_by(webhook_deliveries.c.id)
        return list((await connection.execute(query)).scalars())


def _all(store: AsyncEngine, status: str) -> Callable[[], Any]:
    async def check() -> bool:
        found = await _statuses(store)
        return bool(found) and all(s == status for s in found)

    return check


async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt_signed(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    made = await _subscribe(store, signed_registry, client, receiver, authorization="Bearer r3c")
    value = agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())
    receiver.script = [500, 503]
    await _arrive(store, [value])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    assert 3 == len(receiver.received)
    ids = {headers["webhook-id"] for _, headers, _ in receiver.received}
    assert {read_json(value)["id"]} == ids
    for _, headers, body in receiver.received:
        assert "Bearer r3c" == headers["authorization"]
        assert "application/cloudevents+json" == headers["content-type"]
        assert value == body
        Webhook(made.signing_secret).verify(body, headers)  # raises if the signature is wrong
    async with store.connect() as connection:
        attempts = (await connection.execute(select(webhook_attempts.c.status))).scalars()
        assert [500, 503, 200] == sorted(attempts, key=[500, 503, 200].index)


async def test_intake_and_rounds_on_a_store_another_writer_commits_to_all_the_time_never_fail(
    engines: EngineMaker,
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """On one SQLite file with the router and the tracker, another writer commits between a
    transaction's read and its write: the intake and every round still succeed (no "database
    is locked"), and each event is delivered once."""
    other = engines()
    async with write_transaction(other) as connection:
        await connection.execute(text("CREATE TABLE elsewhere (n INTEGER)"))
    stop = asyncio.Event()

    async def commit_all_the_time() -> int:
        commits = 0
        while not stop.is_set() and commits < 100_000:
            async with write_transaction(other) as connection:
                await connection.execute(text("INSERT INTO elsewhere VALUES (:n)"), {"n": commits})
            commits += 1
            await asyncio.sleep(0)
        return commits

    await _subscribe(store, signed_registry, client, receiver)
    values = [
        agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json()) for _ in range(30)
    ]
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)
    writer = asyncio.create_task(commit_all_the_time())
    try:
        for value in values:
            await _arrive(store, [value])
            await dispatcher.round()  # raises what fails it
        await _until(dispatcher, _all(store, "delivered"))
    finally:
        stop.set()
        commits = await writer

    assert commits > 30  # the other writer kept committing throughout
    assert sorted(values) == sorted(body for _, _, body in receiver.received)


async def test_a_receiver_that_does_not_answer_in_time_is_tried_again(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    await _subscribe(store, signed_registry, client, receiver)
    receiver.script = ["hang"]
    await _arrive(store, [agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    async with store.connect() as connection:
        rows = (
            await connection.execute(select(webhook_attempts.c.status, webhook_attempts.c.error))
        ).all()
    assert [None, 200] == [status for status, _ in rows]
    assert "ReadTimeout" in (rows[0][1] or "")


async def test_410_ends_the_subscription_and_drops_what_it_still_had_to_deliver(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    made = await _subscribe(store, signed_registry, client, receiver)
    case_id = uuid.uuid4()
    receiver.script = [410]
    await _arrive(
        store,
        [
            agency_keys[SENDER].sign(make.opened(case_id, by=SENDER).to_json()),
            agency_keys[SENDER].sign(make.context_updated(case_id, by=SENDER).to_json()),
        ],
    )
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "dropped"))

    found = await subscriptions.find(store, made.subscription_id)
    assert found is not None
    assert ("ended", "the receiver answered 410 Gone") == (found.status, found.end_reason)
    assert 1 == len(receiver.received)


async def test_429_waits_as_long_as_retry_after_says(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    await _subscribe(store, signed_registry, client, receiver)
    receiver.script = [(429, {"Retry-After": "1"})]
    await _arrive(store, [agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    first, second = (at for at, _, _ in receiver.received)
    assert 1.0 <= second - first < 3.0


async def test_a_case_is_delivered_in_order_while_another_case_goes_ahead(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    await _subscribe(store, signed_registry, client, receiver)
    held, other = uuid.uuid4(), uuid.uuid4()
    keys = agency_keys[SENDER]
    first = keys.sign(make.opened(held, by=SENDER).to_json())
    second = keys.sign(make.context_updated(held, by=SENDER).to_json())
    elsewhere = keys.sign(make.opened(other, by=SENDER).to_json())
    receiver.by_body = {first: [500, 500]}
    await _arrive(store, [first, second, elsewhere])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    order = [body for _, _, body in receiver.received]
    delivered_first = len(order) - 1 - order[::-1].index(first)
    assert order.index(second) > delivered_first
    assert order.index(elsewhere) < delivered_first
    assert 1 == order.count(second) == order.count(elsewhere)


async def test_a_round_records_each_delivery_by_its_own_answer_and_attempt(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """A round's delivered ones are recorded together: each keeps its own status and count
    of attempts, and a failed one in the same round waits for its retry."""
    await _subscribe(store, signed_registry, client, receiver)
    keys = agency_keys[SENDER]
    ok, created, retried, failing, late = (
        keys.sign(make.opened(uuid.uuid4(), by=SENDER).to_json()) for _ in range(5)
    )
    receiver.by_body = {created: [201], retried: [500], failing: [500, 503, 500]}
    await _arrive(store, [ok, created, retried, failing])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    assert 4 == await dispatcher.round()
    await _arrive(store, [late])
    await asyncio.sleep(0.1)  # past the first retries' delay (0.05 s at most)
    assert 3 == await dispatcher.round()

    d = webhook_deliveries.c
    async with store.connect() as connection:
        rows = (
            await connection.execute(
                select(d.body, d.status, d.attempts, d.last_status, d.last_error, d.claimed_until)
            )
        ).all()
    found = {row.body.encode(): row for row in rows}
    expected = {
        ok: ("delivered", 1, 200, None),
        created: ("delivered", 1, 201, None),
        retried: ("delivered", 2, 200, None),
        late: ("delivered", 1, 200, None),
        failing: ("pending", 2, 503, "HTTP 503"),
    }
    assert expected == {
        body: (row.status, row.attempts, row.last_status, row.last_error)
        for body, row in found.items()
    }
    assert [None] * 5 == [row.claimed_until for row in rows]


async def test_past_the_horizon_the_event_is_a_dead_letter_and_its_sender_is_told(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    kafka: str,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    await _subscribe(store, signed_registry, client, receiver)
    case_id = uuid.uuid4()
    value = agency_keys[SENDER].sign(make.opened(case_id, by=SENDER).to_json())
    receiver.script = [500] * 100
    await _arrive(store, [value])
    brief = quick.model_copy(update={"webhook_horizon": timedelta(seconds=1)})
    dispatcher = Dispatcher(brief, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "dead"))

    event_id = read_json(value)["id"]
    dead = await read_until(kafka, topics.DLQ, lambda r: r.value == value, timeout=5)
    assert "webhook-undeliverable" == headers_of(dead[0])[topics.DLQ_REASON_CODE]
    assert "gateway" == headers_of(dead[0])[topics.DLQ_REJECTED_BY]
    notices = await read_until(
        kafka,
        topics.inbox(SENDER),
        lambda r: read_json(r.value).get("causationid") == event_id,
        timeout=5,
    )
    assert "webhook-undeliverable" == read_json(notices[0].value)["data"]["reason_code"]
    assert 2 <= len(receiver.received)


async def test_a_receiver_that_does_not_allow_the_bus_in_the_handshake_is_not_subscribed(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    receiver.allowed_origin = None

    with pytest.raises(subscriptions.SubscriptionRefused, match="did not allow origin"):
        await _subscribe(store, signed_registry, client, receiver)

    assert [] == await subscriptions.listing(store)
    receiver.allowed_origin = "*"
    assert "active" == (await _subscribe(store, signed_registry, client, receiver)).status


async def test_a_callback_over_plain_http_is_refused_unless_it_is_loopback(
    store: AsyncEngine, signed_registry: AgencyRegistry, client: httpx.AsyncClient
) -> None:
    with pytest.raises(subscriptions.SubscriptionRefused, match="must be https"):
        await subscriptions.subscribe(
            store, signed_registry, client, agency=RECEIVER, callback_url="http://example.org/h"
        )


async def test_an_agency_makes_lists_and_ends_its_subscription_over_http(
    gateway: httpx.AsyncClient, store: AsyncEngine, receiver: Receiver
) -> None:
    token = await tokens.issue(store, RECEIVER)
    auth = {"authorization": f"Bearer {token}"}

    made = await gateway.post(
        "/v1/subscriptions",
        json={"callbackUrl": receiver.url, "auth": "Bearer r3c", "types": ["handoff-requested"]},
        headers=auth,
    )
    assert 201 == made.status_code, made.text
    listed = await gateway.get("/v1/subscriptions", headers=auth)
    ended = await gateway.delete(f"/v1/subscriptions/{made.json()['id']}", headers=auth)
    after = await gateway.get("/v1/subscriptions", headers=auth)

    assert 201 == made.status_code, made.text
    assert made.json()["signingSecret"].startswith("whsec_")
    assert "auth" not in made.json()
    assert [(made.json()["id"], "active", ["handoff-requested"])] == [
        (s["id"], s["status"], s["types"]) for s in listed.json()
    ]
    assert all("signingSecret" not in s for s in listed.json())
    assert 204 == ended.status_code
    assert ["ended"] == [s["status"] for s in after.json()]


async def test_a_subscription_to_a_type_the_agency_never_receives_is_400(
    gateway: httpx.AsyncClient, store: AsyncEngine, receiver: Receiver
) -> None:
    token = await tokens.issue(store, RECEIVER)

    answer = await gateway.post(
        "/v1/subscriptions",
        json={"callbackUrl": receiver.url, "types": ["no-such-event"]},
        headers={"authorization": f"Bearer {token}"},
    )

    assert 400 == answer.status_code
    assert "receives no no-such-event" in answer.json()["detail"]


async def test_a_replayed_delivery_is_posted_again_with_the_same_webhook_id(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    made = await _subscribe(store, signed_registry, client, receiver)
    await _arrive(store, [agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)
    await _until(dispatcher, _all(store, "delivered"))

    assert 1 == await replay(store, subscription_id=made.subscription_id)
    await _until(dispatcher, _all(store, "delivered"))

    ids = [headers["webhook-id"] for _, headers, _ in receiver.received]
    assert 2 == len(ids) == 2 * len(set(ids))


def _notificatie(kanaal: str = "zaken") -> tuple[bytes, dict[str, Any]]:
    """A zgw-notificatie as the gateway puts it in an inbox, and the message it was made of."""
    zaak = f"https://openzaak.gm0363.example.nl/zaken/api/v1/zaken/{uuid.uuid4()}"
    message = NotificatieMessage(
        kanaal=kanaal,
        hoofd_object=zaak,
        resource="zaak",
        resource_url=zaak,
        actie="create",
        aanmaakdatum=datetime.now(UTC),
        kenmerken={"bronorganisatie": "002220647"},
    )
    event = notificatie_event(message, agency="gm0363", operator_oin="00000099000000000001")
    return event.to_json(), message.api_form()


async def test_a_notificaties_subscription_gets_the_zgw_message_and_nothing_else(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """Format notificaties: the Notificaties API 1.0 message as JSON, signed like any delivery;
    an event with no Notificaties form is not kept for it."""
    made = await _subscribe(
        store, signed_registry, client, receiver, delivery_format=subscriptions.NOTIFICATIES
    )
    value, message = _notificatie()
    other = agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())
    await _arrive(store, [other, value])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    assert ["zgw-notificatie"] == made.event_types
    assert 1 == len(receiver.received)
    _, headers, body = receiver.received[0]
    assert "application/json" == headers["content-type"]
    assert message == read_json(body)
    assert read_json(value)["id"] == headers["webhook-id"]
    Webhook(made.signing_secret).verify(body, headers)


async def test_a_channel_filter_keeps_only_that_kanaal_and_ketenbus_names_the_bus_s_own(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """channels [zaken]: a zaken notification is delivered; a documenten one and a bus event
    are not. channels [ketenbus]: the bus event alone."""
    zaken, _ = _notificatie("zaken")
    documenten, _ = _notificatie("documenten")
    bus_event = agency_keys[SENDER].sign(make.opened(uuid.uuid4(), by=SENDER).to_json())
    await _subscribe(store, signed_registry, client, receiver, channels=["zaken"])
    await _subscribe(store, signed_registry, client, receiver, channels=["ketenbus"])
    await _arrive(store, [zaken, documenten, bus_event])
    dispatcher = Dispatcher(quick, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "delivered"))

    assert sorted([zaken, bus_event]) == sorted(body for _, _, body in receiver.received)


async def test_a_notificaties_subscription_for_another_type_is_refused(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    """Only a zgw-notificatie has a Notificaties form: asking for case-opened in it is refused."""
    with pytest.raises(subscriptions.SubscriptionRefused, match="delivers zgw-notificatie alone"):
        await _subscribe(
            store,
            signed_registry,
            client,
            receiver,
            event_types=["case-opened"],
            delivery_format=subscriptions.NOTIFICATIES,
        )


async def test_a_notificatie_given_up_is_a_dead_letter_as_the_event_and_its_afzender_is_told(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    client: httpx.AsyncClient,
    receiver: Receiver,
    broker: KafkaBroker,
    quick: Settings,
    kafka: str,
) -> None:
    """A notificaties subscription is sent the ZGW message, but what it gives up goes to the
    dead letters as the inbox's event, and gm0363 (whose Open Zaak sent it) is told."""
    await _subscribe(
        store, signed_registry, client, receiver, delivery_format=subscriptions.NOTIFICATIES
    )
    value, message = _notificatie()
    receiver.script = [500] * 100
    await _arrive(store, [value])
    brief = quick.model_copy(update={"webhook_horizon": timedelta(seconds=1)})
    dispatcher = Dispatcher(brief, signed_registry, store, broker, client)

    await _until(dispatcher, _all(store, "dead"))

    assert {json.dumps(message, separators=(",", ":")).encode()} == {
        b for _, _, b in receiver.received
    }
    dead = await read_until(kafka, topics.DLQ, lambda r: r.value == value, timeout=5)
    assert "webhook-undeliverable" == headers_of(dead[0])[topics.DLQ_REASON_CODE]
    event_id = read_json(value)["id"]
    notices = await read_until(
        kafka,
        topics.inbox("gm0363"),
        lambda r: read_json(r.value).get("causationid") == event_id,
        timeout=5,
    )
    assert "webhook-undeliverable" == read_json(notices[0].value)["data"]["reason_code"]
