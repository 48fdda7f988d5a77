"""A handoff request its receiver's webhook never takes: the gateway's give-up notice goes on
the case log too, for the escalation service. A real HTTP receiver on loopback that answers
500, real broker; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.events import DeliveryFailed
from contracts.handoff import gateway_source
from contracts.parse import parse_event
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from contracts.registry import AgencyRegistry
from services.gateway import subscriptions
from services.gateway.dispatch import Dispatcher
from services.gateway.inbox import InboxIntake
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.store.tables import webhook_deliveries
from tests._testutil import EventFactory, read_to_end, read_until
from tests._testutil.webhook_receiver import run_until, webhook_receiver

pytestmark = pytest.mark.broker

RECEIVER = "gm0363"
SENDER = "uwv"
_offsets = iter(range(1_000_000))


@pytest.fixture
def brief(settings: Settings) -> Settings:
    """Retries a few times in a second, then gives up."""
    return settings.model_copy(
        update={
            "webhook_retry_base_s": 0.05,
            "webhook_timeout_s": 0.5,
            "webhook_horizon": timedelta(seconds=1),
        }
    )


async def _arrive(store: AsyncEngine, values: list[bytes]) -> None:
    """As if the router had put `values` in the receiver's inbox and the gateway read them."""
    records = [
        SimpleNamespace(topic=topics.inbox(RECEIVER), partition=0, offset=next(_offsets), value=v)
        for v in values
    ]
    await InboxIntake(store).take(records)


def _keys(*case_ids: uuid.UUID) -> set[bytes]:
    return {str(case_id).encode() for case_id in case_ids}


def _finished(store: AsyncEngine, count: int) -> Callable[[], Awaitable[bool]]:
    """No delivery pending, and `count` of them there."""

    async def check() -> bool:
        async with store.connect() as connection:
            found = list((await connection.execute(select(webhook_deliveries.c.status))).scalars())
        return len(found) == count and "pending" not in found

    return check


def _notices(case_ids: set[uuid.UUID]) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """The `delivery-failed` records of these cases (key = case id)."""
    keys = _keys(*case_ids)
    return lambda r: r.key in keys and b".delivery-failed" in (r.value or b"")


async def test_a_handoff_request_its_receiver_never_takes_is_also_on_the_case_log(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    kafka: str,
    brief: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """Given up past the horizon, a `handoff-requested` to the subscription's agency has the
    sender's notice on `ketenbus.cases` too (key = case id, the same notice as in the
    sender's inbox, from the gateway, about the request, from the receiver's inbox); a
    request the receiver itself sent, and a case-opened, have their notice in the inbox only.
    """
    stalled, own, opened = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    request = make.requested(stalled, uuid.uuid4(), SENDER, RECEIVER)
    values = [
        agency_keys[SENDER].sign(request.to_json()),
        agency_keys[RECEIVER].sign(make.requested(own, uuid.uuid4(), RECEIVER, SENDER).to_json()),
        agency_keys[SENDER].sign(make.opened(opened, by=SENDER).to_json()),
    ]
    broker = make_broker(brief, kafka, client_id="ketenbus-gateway-give-up")
    await broker.start()
    try:
        async with httpx.AsyncClient() as client, webhook_receiver(500) as receiver:
            await subscriptions.subscribe(
                store, signed_registry, client, agency=RECEIVER, callback_url=receiver.url
            )
            await _arrive(store, values)
            dispatcher = Dispatcher(brief, signed_registry, store, broker, client)
            await run_until(dispatcher, _finished(store, 3))
    finally:
        await broker.stop()

    [on_log] = await read_until(kafka, topics.CASES, _notices({stalled}), timeout=10)
    [in_inbox] = await read_until(kafka, topics.inbox(SENDER), _notices({stalled}), timeout=10)
    notice = parse_event(on_log.value or b"")
    assert isinstance(notice, DeliveryFailed)
    assert in_inbox.value == on_log.value
    assert (gateway_source(signed_registry), stalled, request.id) == (
        notice.source,
        notice.subject,
        notice.causationid,
    )
    assert (WEBHOOK_UNDELIVERABLE, str(request.id), topics.inbox(RECEIVER)) == (
        notice.data.reason_code,
        notice.data.rejected_event_id,
        notice.data.topic,
    )
    assert 2 <= len(receiver.received)
    assert [] == await read_to_end(kafka, [topics.CASES], _notices({own, opened}))
    # Their give-ups did happen: a dead letter each, only the case log left out.
    dead = await read_to_end(kafka, [topics.DLQ], lambda r: r.key in _keys(own, opened))
    assert 2 == len(dead)


async def test_a_handoff_request_another_subscription_of_the_receiver_delivered_stays_off_the_log(
    store: AsyncEngine,
    signed_registry: AgencyRegistry,
    kafka: str,
    brief: Settings,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    """The receiver has the request through one of its webhooks: the other's give-up is a
    dead letter and a notice to the sender, but no stalled handoff on the case log."""
    case_id = uuid.uuid4()
    request = make.requested(case_id, uuid.uuid4(), SENDER, RECEIVER)
    broker = make_broker(brief, kafka, client_id="ketenbus-gateway-give-up")
    await broker.start()
    try:
        async with (
            httpx.AsyncClient() as client,
            webhook_receiver(500) as failing,
            webhook_receiver(200) as taking,
        ):
            for receiver in (failing, taking):
                await subscriptions.subscribe(
                    store, signed_registry, client, agency=RECEIVER, callback_url=receiver.url
                )
            await _arrive(store, [agency_keys[SENDER].sign(request.to_json())])
            dispatcher = Dispatcher(brief, signed_registry, store, broker, client)
            await run_until(dispatcher, _finished(store, 2))
    finally:
        await broker.stop()

    told = await read_until(kafka, topics.inbox(SENDER), _notices({case_id}), timeout=10)
    assert 1 == len(told)
    assert 1 == len(taking.received)
    assert [] == await read_to_end(kafka, [topics.CASES], _notices({case_id}))
