"""An agency system on librdkafka (confluent-kafka), its own code, the README's rules alone.

librdkafka hashes keys with murmur2 as the Java client does (`partitioner=murmur2_random`),
so the two spellings of a case id, plain and as a JSON string, land on different
partitions. The bus takes one spelling: the other is refused with its own reason, the
notice names the event, and a sender that resends it as the notice says strands nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from contracts import topics
from tests._testutil import EventFactory, read_until
from tests.services.router.conftest import Bus
from tests.services.router.events import tampered

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

HOLDER, RECEIVER = "belastingdienst", "gm0363"
CASES = 6


def _librdkafka(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "partitioner": "murmur2_random",  # the Java client's, as aiokafka's default
            "linger.ms": 5,
            "message.timeout.ms": 20_000,
        }
    )


async def _produce(producer: Producer, topic: str, sends: list[tuple[bytes, bytes]]) -> list[int]:
    """Produce with librdkafka, wait for every delivery report; the partitions written."""
    reports: list[Any] = []
    for key, value in sends:
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=[("content-type", b"application/cloudevents+json")],
            on_delivery=lambda err, msg: reports.append((err, msg)),
        )
    deadline = time.monotonic() + 20
    while len(reports) < len(sends) and time.monotonic() < deadline:
        producer.poll(0)
        await asyncio.sleep(0.02)
    assert len(sends) == len(reports)
    assert [] == [err for err, _ in reports if err is not None]
    return [msg.partition() for _, msg in reports]


def _notices(records: list[Any]) -> dict[str, dict[str, Any]]:
    """delivery-failed notices by the refused event's id."""
    found = {}
    for record in records:
        document = json.loads(record.value)
        if document["type"].endswith(".delivery-failed"):
            found[document["data"].get("rejected_event_id")] = document["data"]
    return found


def _is_notice_for(event_ids: set[str]) -> Any:
    def match(record: Any) -> bool:
        document = json.loads(record.value)
        return (
            document["type"].endswith(".delivery-failed")
            and document["data"].get("rejected_event_id") in event_ids
        )

    return match


async def test_librdkafka_senders_are_told_which_event_was_refused_and_no_case_is_stranded(
    bus: Bus,
) -> None:
    """Quoted keys and a bad signature from librdkafka: each notice names its event; a
    handoff resent with the plain key reaches its receiver for every case."""
    make = EventFactory(bus.registry)
    sender = bus.keys[HOLDER]
    producer = _librdkafka(bus.bootstrap)
    cases = [uuid.uuid4() for _ in range(CASES)]
    handoffs = {case_id: uuid.uuid4() for case_id in cases}
    opened = {c: sender.sign(make.opened(c, by=HOLDER)) for c in cases}
    requested = {c: sender.sign(make.requested(c, handoffs[c], HOLDER, RECEIVER)) for c in cases}
    forged_case = uuid.uuid4()
    forged_event = make.opened(forged_case, by=HOLDER)
    forged = tampered(sender.sign(forged_event), lambda e: e["data"].update(summary="changed"))

    # Opened with the plain key, the handoff with the id as a JSON string.
    await _produce(producer, topics.outbox(HOLDER), [(str(c).encode(), opened[c]) for c in cases])
    quoted = [(f'"{c}"'.encode(), requested[c]) for c in cases]
    await _produce(producer, topics.outbox(HOLDER), [*quoted, (str(forged_case).encode(), forged)])

    refused_ids = {str(json.loads(requested[c])["id"]) for c in cases} | {str(forged_event.id)}
    told = await read_until(
        bus.bootstrap, topics.inbox(HOLDER), _is_notice_for(refused_ids), count=len(refused_ids)
    )
    notices = _notices(told)

    assert refused_ids == set(notices)
    for case_id in cases:
        notice = notices[str(json.loads(requested[case_id])["id"])]
        assert ("quoted-key", "nl.overheid.ketenzaken.handoff-requested", False) == (
            notice["reason_code"],
            notice["rejected_event_type"],
            notice["unverified"],
        )
    assert ("bad-signature", True) == (
        notices[str(forged_event.id)]["reason_code"],
        notices[str(forged_event.id)]["unverified"],
    )

    # Resent as the notice says: every handoff reaches its receiver; none is "unknown".
    await _produce(
        producer, topics.outbox(HOLDER), [(str(c).encode(), requested[c]) for c in cases]
    )
    for case_id in cases:
        delivered = await read_until(bus.bootstrap, topics.inbox(RECEIVER), _handoff_of(case_id))
        assert 1 == len(delivered), f"case {case_id} stranded with its first holder"
    producer.flush(5)


def _handoff_of(case_id: uuid.UUID) -> Any:
    key = str(case_id).encode()
    return lambda r: r.key == key and json.loads(r.value)["type"].endswith(".handoff-requested")
