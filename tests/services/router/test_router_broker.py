"""The router on the real embedded broker and a real store (SQLite, PostgreSQL).

Signed events go in through the outboxes; what reaches the case log, each
inbox, the dead-letter topic and the audit trail (store and topic) is read back
with plain Kafka clients. Every test has its own router, store and consumer
group (`bus`, in conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.audit import AuditRecord
from contracts.case import PersonalSection, SealedPersonal
from contracts.registry import AgencyRegistry
from contracts.sealing import CannotOpen
from services.audit import trace, verify
from services.router.app import create_router
from services.runtime.config.settings import Settings
from services.runtime.store.tables import audit_records, case_custody, router_seen_events
from tests._testutil import (
    EventFactory,
    event_id,
    headers_of,
    keyed,
    produce,
    read_to_end,
    read_until,
    start_group_at_end,
)
from tests.services.router.conftest import Bus, CountingRouting
from tests.services.router.events import BSN, CITIZEN, full_context, tampered, with_context

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _inboxes(bus: Bus) -> list[str]:
    return [topics.inbox(agency.code) for agency in bus.registry.agencies]


def _receiver(record: Record) -> str:
    """The agency whose inbox `record` was read from."""
    topic: str = record.topic
    return topic.removeprefix("agency.").removesuffix(".inbox")


def _event(record: Record) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(record.value)
    return document


def _name(record: Record) -> str:
    return str(_event(record)["type"]).rsplit(".", 1)[1]


def _of_event(value: bytes) -> Callable[[Record], bool]:
    """Match the records that hold the event `value` (or a copy of it): same case, same id."""
    document = json.loads(value)
    key, wanted = document["subject"].encode(), document["id"]
    return lambda record: record.key == key and event_id(record) == wanted


async def _send(bus: Bus, agency: str, *values: bytes) -> None:
    """Produce signed events, in order, to `agency`'s outbox, keyed by their case."""
    messages = [(json.loads(value)["subject"].encode(), value) for value in values]
    await produce(bus.bootstrap, topics.outbox(agency), messages)


async def _routed(bus: Bus, agency: str, *values: bytes) -> None:
    """Send events and wait until the last is on the case log (so the next may rely on it)."""
    await _send(bus, agency, *values)
    assert await read_until(bus.bootstrap, topics.CASES, _of_event(values[-1])), (
        f"{_name_of(values[-1])} from {agency} did not reach the case log"
    )


async def _completed(bus: Bus, count: int, timeout: float = 30.0) -> None:
    """Wait until the router has completed `count` messages: produced, stored and committed.

    Its outputs are on Kafka before its store transaction commits; this is after both.
    """
    deadline = time.monotonic() + timeout
    while bus.routing.stats.completed < count:
        assert time.monotonic() < deadline, f"{bus.routing.stats} after {timeout} s"
        await asyncio.sleep(0.05)


def _name_of(value: bytes) -> str:
    return str(json.loads(value)["type"]).rsplit(".", 1)[1]


@dataclass(frozen=True)
class Handoff:
    """A case belastingdienst opened and handed off to gm0363, which accepted it."""

    case_id: uuid.UUID
    opened: bytes
    requested: bytes
    accepted: bytes
    sealed: SealedPersonal


async def _handoff(bus: Bus) -> Handoff:
    make = EventFactory(bus.registry)
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    sender = bus.keys["belastingdienst"]
    personal = PersonalSection(bsn=BSN, name=CITIZEN)
    sealed = sender.seal(personal, ["gm0363", "svb"], bus.registry)
    opened = sender.sign(
        with_context(make.opened(case_id, by="belastingdienst"), full_context("belastingdienst"))
    )
    requested = sender.sign(
        with_context(
            make.requested(case_id, handoff_id, "belastingdienst", "gm0363"),
            full_context("belastingdienst", sealed),
        )
    )
    accepted = bus.keys["gm0363"].sign(
        make.accepted(case_id, handoff_id, "belastingdienst", "gm0363")
    )
    await _routed(bus, "belastingdienst", opened, requested)
    await _routed(bus, "gm0363", accepted)
    await _completed(bus, 3)
    return Handoff(case_id, opened, requested, accepted, sealed)


async def test_a_valid_handoff_reaches_the_case_log_as_signed_and_each_receiver_once(
    bus: Bus,
) -> None:
    flow = await _handoff(bus)

    log = await read_to_end(bus.bootstrap, [topics.CASES], keyed(flow.case_id))
    delivered = await read_to_end(bus.bootstrap, _inboxes(bus), keyed(flow.case_id))

    assert [flow.opened, flow.requested, flow.accepted] == [r.value for r in log]
    assert [
        ("belastingdienst", "handoff-accepted"),
        ("gm0363", "case-opened"),
        ("gm0363", "handoff-requested"),
        ("toeslagen", "case-opened"),
    ] == sorted((_receiver(r), _name(r)) for r in delivered)


async def test_a_receivers_copy_holds_only_its_granted_fields_and_its_own_sealed_box(
    bus: Bus,
) -> None:
    flow = await _handoff(bus)

    delivered = await read_to_end(bus.bootstrap, _inboxes(bus), keyed(flow.case_id))
    copies = {(_receiver(r), _name(r)): _event(r) for r in delivered}
    handoff = copies[("gm0363", "handoff-requested")]

    assert {"signature", "signingkey"}.isdisjoint(handoff)
    assert {"gm0363": flow.sealed.sealed["gm0363"]} == handoff["data"]["context"]["personal"][
        "sealed"
    ]
    # case-opened: gm0363's subscription grants flags, toeslagen's does not.
    assert copies[("gm0363", "case-opened")]["data"]["context"]["flags"]
    assert not copies[("toeslagen", "case-opened")]["data"]["context"].get("flags")
    for copy in copies.values():
        assert BSN.encode() not in json.dumps(copy).encode()


async def test_the_receivers_sealed_box_opens_with_its_key_and_with_no_other_agencys(
    bus: Bus,
) -> None:
    flow = await _handoff(bus)

    (copy,) = await read_to_end(bus.bootstrap, [topics.inbox("gm0363")], _of_event(flow.requested))
    sealed = SealedPersonal.model_validate(_event(copy)["data"]["context"]["personal"])
    box = sealed.sealed["gm0363"]

    assert PersonalSection(bsn=BSN, name=CITIZEN) == bus.keys["gm0363"].open(sealed)
    for code, keys in bus.keys.items():
        if code != "gm0363":
            # gm0363's box, put where `code` would look for its own: its key cannot open it.
            with pytest.raises(CannotOpen, match="does not open"):
                keys.open(SealedPersonal(sealed={code: box}))
    with pytest.raises(CannotOpen, match="nothing is sealed for agency 'svb'"):
        bus.keys["svb"].open(sealed)


async def test_every_inbox_delivery_has_an_audit_record_in_the_store_and_on_the_audit_topic(
    bus: Bus,
) -> None:
    flow = await _handoff(bus)
    category = bus.registry.category("schulden")
    assert category is not None

    delivered = await read_to_end(bus.bootstrap, _inboxes(bus), keyed(flow.case_id))
    stored = await trace(bus.store, flow.case_id)
    published = await read_until(
        bus.bootstrap, topics.AUDIT, keyed(flow.case_id), count=len(stored)
    )
    report = await verify(bus.store)

    assert sorted((event_id(r), _receiver(r)) for r in delivered) == sorted(
        (str(record.event_id), record.receiver) for record in stored
    )
    assert stored == sorted(
        (AuditRecord.model_validate_json(r.value) for r in published), key=lambda r: r.seq
    )
    (handoff,) = [r for r in stored if r.event_type == "handoff-requested"]
    assert ("gm0363", ["actions", "promises", "flags", "personal"]) == (
        handoff.receiver,
        handoff.fields,
    )
    assert (category.handoff_purpose, category.handoff_legal_basis) == (
        handoff.purpose,
        handoff.legal_basis,
    )
    assert (True, len(stored)) == (report.intact, report.records)


@dataclass(frozen=True)
class Refusal:
    """Events that set a case up, and one the router must refuse, from `sender`."""

    setup: list[tuple[str, bytes]]
    sender: str
    refused: bytes


def _forged_signature(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    value = bus.keys["uwv"].sign(make.opened(case_id, by="uwv"))
    # A well-formed signature, of another event: someone without uwv's key made it up.
    other = json.loads(bus.keys["uwv"].sign(make.opened(uuid.uuid4(), by="uwv")))["signature"]
    return Refusal([], "uwv", tampered(value, lambda e: e.update(signature=other)))


def _tampered_payload(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    value = bus.keys["uwv"].sign(make.opened(case_id, by="uwv", category="schulden"))
    return Refusal([], "uwv", tampered(value, lambda e: e["data"].update(category="uitkering")))


def _foreign_key(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    return Refusal([], "uwv", bus.keys["svb"].sign(make.opened(case_id, by="uwv")))


def _replayed_id(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    opened = bus.keys["uwv"].sign(make.opened(case_id, by="uwv"))
    update = bus.keys["uwv"].sign(
        with_context(make.context_updated(case_id, by="uwv"), full_context("uwv"))
    )
    # The holder's context update, admitted once; the very same bytes again are a replay.
    return Refusal([("uwv", opened), ("uwv", update)], "uwv", update)


def _accept_by_the_wrong_agency(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    handoff_id = uuid.uuid4()
    setup = [
        ("uwv", bus.keys["uwv"].sign(make.opened(case_id, by="uwv"))),
        ("uwv", bus.keys["uwv"].sign(make.requested(case_id, handoff_id, "uwv", "gm0363"))),
    ]
    wrong = make.accepted(case_id, handoff_id, "uwv", "gm0363", by="cjib")
    return Refusal(setup, "cjib", bus.keys["cjib"].sign(wrong))


def _close_by_a_non_holder(bus: Bus, make: EventFactory, case_id: uuid.UUID) -> Refusal:
    setup = [("uwv", bus.keys["uwv"].sign(make.opened(case_id, by="uwv")))]
    return Refusal(setup, "svb", bus.keys["svb"].sign(make.closed(case_id, by="svb")))


@pytest.mark.parametrize(
    ("scenario", "code", "reason"),
    [
        (_forged_signature, "bad-signature", "does not verify with agency 'uwv'"),
        (_tampered_payload, "bad-signature", "changed after signing"),
        (_foreign_key, "foreign-key", "signed with the key of agency 'svb'"),
        (_replayed_id, "duplicate-event-id", "was delivered before"),
        (_accept_by_the_wrong_agency, "not-permitted", "only gm0363 may accept"),
        (_close_by_a_non_holder, "not-permitted", "only the holder (uwv) may close"),
    ],
    ids=[
        "forged-signature",
        "tampered-payload",
        "another-agencys-key",
        "replayed-event-id",
        "accept-by-the-wrong-agency",
        "close-by-a-non-holder",
    ],
)
async def test_a_refused_event_is_dead_lettered_with_its_reason_and_delivered_nowhere(
    bus: Bus,
    scenario: Callable[[Bus, EventFactory, uuid.UUID], Refusal],
    code: str,
    reason: str,
) -> None:
    case_id = uuid.uuid4()
    refusal = scenario(bus, EventFactory(bus.registry), case_id)
    for agency, value in refusal.setup:
        await _routed(bus, agency, value)
    watched = [topics.CASES, *_inboxes(bus)]
    before = await read_to_end(bus.bootstrap, watched, _of_event(refusal.refused))

    await _send(bus, refusal.sender, refusal.refused)
    dead = await read_until(bus.bootstrap, topics.DLQ, _of_event(refusal.refused))
    notices = await read_until(
        bus.bootstrap,
        topics.inbox(refusal.sender),
        lambda r: r.key == str(case_id).encode() and _name(r) == "delivery-failed",
    )
    after = await read_to_end(bus.bootstrap, watched, _of_event(refusal.refused))

    assert 1 == len(dead), "the refused event was not dead-lettered once"
    headers = headers_of(dead[0])
    assert code == headers[topics.DLQ_REASON_CODE]
    assert reason in headers[topics.DLQ_REASON]
    assert refusal.refused == dead[0].value
    assert [code] == [_event(n)["data"]["reason_code"] for n in notices]
    # Nothing new for the event on the case log or in any inbox (the replay: its first delivery).
    assert [(r.topic, r.partition, r.offset) for r in before] == [
        (r.topic, r.partition, r.offset) for r in after
    ]


async def test_the_router_keeps_routing_after_bad_input(bus: Bus) -> None:
    case_id = uuid.uuid4()
    good = bus.keys["uwv"].sign(EventFactory(bus.registry).opened(case_id, by="uwv"))
    garbage: list[tuple[bytes | None, bytes]] = [(None, b"\x00\xff" * n) for n in range(1, 20)]
    await produce(bus.bootstrap, topics.outbox("uwv"), [*garbage, (str(case_id).encode(), good)])

    delivered = await read_until(bus.bootstrap, topics.inbox("gm0363"), keyed(case_id))

    assert [good] == [r.value for r in delivered]


async def _rename(store: AsyncEngine, old: str, new: str) -> None:
    async with store.begin() as connection:
        await connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def _count(store: AsyncEngine, table: Any) -> int:
    async with store.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def test_without_its_audit_store_the_router_delivers_nothing_and_then_everything_once(
    bus: Bus,
) -> None:
    make = EventFactory(bus.registry)
    sender = bus.keys["belastingdienst"]
    # A case routed first: the router is consuming, and the chain has a record before the outage.
    await _routed(
        bus, "belastingdienst", sender.sign(make.opened(uuid.uuid4(), by="belastingdienst"))
    )
    cases = [uuid.uuid4() for _ in range(3)]
    values = [
        value
        for case_id in cases
        for value in (
            sender.sign(make.opened(case_id, by="belastingdienst")),
            sender.sign(make.requested(case_id, uuid.uuid4(), "belastingdienst", "gm0363")),
        )
    ]
    ours = {str(case_id).encode() for case_id in cases}
    watched = [topics.CASES, *_inboxes(bus)]
    state = (case_custody, router_seen_events)

    def mine(record: Record) -> bool:
        return record.key in ours

    kept_before = [await _count(bus.store, table) for table in state]
    completed_before, checked_before = bus.routing.stats.completed, bus.routing.checked
    await _rename(bus.store, "audit_records", "audit_records_away")
    try:
        await _send(bus, "belastingdienst", *values)
        deadline = time.monotonic() + 20
        while bus.routing.checked < checked_before + len(values):
            assert time.monotonic() < deadline, "the router did not look at the events"
            await asyncio.sleep(0.05)
        # It has them; had it delivered them without its audit store, it would have by now.
        held_back = await read_until(bus.bootstrap, topics.CASES, mine, timeout=2.0)
        held_back += await read_to_end(bus.bootstrap, watched, mine)
        kept_during = [await _count(bus.store, table) for table in state]
    finally:
        await _rename(bus.store, "audit_records_away", "audit_records")

    await _completed(bus, completed_before + len(values), timeout=60)
    delivered = await read_to_end(bus.bootstrap, watched, mine)
    stored = [record for case_id in cases for record in await trace(bus.store, case_id)]
    report = await verify(bus.store)

    assert [] == held_back
    assert kept_before == kept_during
    # Per case: the case log twice, gm0363 both events, toeslagen the case-opened.
    assert 5 * len(cases) == len(delivered)
    assert {1} == set(Counter((r.topic, event_id(r)) for r in delivered).values())
    assert sorted((event_id(r), _receiver(r)) for r in delivered if r.topic != topics.CASES) == (
        sorted((str(record.event_id), record.receiver) for record in stored)
    )
    assert (True, await _count(bus.store, audit_records)) == (report.intact, report.records)


async def test_a_record_redelivered_after_its_batch_was_committed_is_not_reported_as_refused(
    kafka: str,
    settings: Settings,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    store: AsyncEngine,
) -> None:
    # Two groups positioned before the event: the second router reads the record the first
    # routed, on the same store, as a router that took over an uncommitted offset would.
    outboxes = [topics.outbox(agency.code) for agency in signed_registry.agencies]
    groups = [f"router-test-{uuid.uuid4()}" for _ in range(2)]
    for group in groups:
        await start_group_at_end(kafka, group, outboxes)
    make = EventFactory(signed_registry)
    case_id = uuid.uuid4()
    uwv = agency_keys["uwv"]
    opened = uwv.sign(make.opened(case_id, by="uwv"))
    marker = uwv.sign(with_context(make.context_updated(case_id, by="uwv"), full_context("uwv")))
    bus = Bus(kafka, store, CountingRouting(signed_registry), signed_registry, agency_keys)

    for group, value in zip(groups, (opened, marker), strict=True):
        router = create_router(settings, signed_registry, kafka, store, group_id=group)
        await router.start()
        try:
            # The second router reads `opened` again before the marker after it.
            await _routed(bus, "uwv", value)
        finally:
            await router.stop()
    log = await read_to_end(kafka, [topics.CASES], keyed(case_id))
    notices = await read_to_end(
        kafka,
        [topics.inbox("uwv")],
        lambda r: r.key == str(case_id).encode() and _name(r) == "delivery-failed",
    )

    assert [opened, marker] == [r.value for r in log]
    assert [] == [_event(n)["data"]["reason_code"] for n in notices]
