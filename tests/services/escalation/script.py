"""Write a case's events to the case log as the router would, and read what the service emits.

The escalation service reads only `ketenbus.cases`, so the tests produce their
input there directly (key = case id, the value a valid event from a registry
source, made by the shared `EventFactory`), with the times of the service's own clock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from contracts import topics
from contracts.case import CaseContext, CaseFlag, EscalationLevel, EscalationPath
from contracts.envelope import CaseEvent, oin_of_source
from contracts.events import (
    CaseContextUpdated,
    CaseOpened,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationRequested,
    HandoffAccepted,
    HandoffRejected,
    HandoffRequested,
    TeamRef,
)
from contracts.parse import parse_event
from contracts.registry import AgencyRegistry
from services.runtime.process.clock import Clock
from tests._testutil import EventFactory, keyed, read_until

E = TypeVar("E", bound=CaseEvent[Any])


async def read_all(
    bootstrap: str, topic: str, match: Callable[[ConsumerRecord[bytes, bytes]], bool]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every matching record on `topic` now: read from the start up to each partition's
    high-watermark (as the fetch reports it; the embedded broker's end offsets lag)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata
        numbers = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100)
            found += [r for records in batches.values() for r in records if match(r)]
            marks = [consumer.highwater(tp) for tp in partitions]
            positions = [await consumer.position(tp) for tp in partitions]
            if all(m is not None and p >= m for m, p in zip(marks, positions, strict=True)):
                return found
        raise AssertionError(f"{topic} not read to its end in 10 s")
    finally:
        await consumer.stop()


def quick_path(within: timedelta) -> EscalationPath:
    """A case's own three-level path, each level with `within` to acknowledge."""
    rungs = [
        ("gm0363", "schuldhulp-teamleiding"),
        ("gm0363", "regionaal-escalatieteam"),
        ("minszw", "maatwerkloket"),
    ]
    return EscalationPath(
        levels=[
            EscalationLevel(level=n, agency=agency, team=team, acknowledge_within=within)
            for n, (agency, team) in enumerate(rungs, start=1)
        ]
    )


@dataclass
class Bus:
    """The case log's writer side and the readers of the service's output.

    Its events come from the shared `EventFactory` at the time of the service's own
    clock, each case's numbered 1, 2, 3, ...
    """

    bootstrap: str
    registry: AgencyRegistry
    clock: Clock
    producer: AIOKafkaProducer
    make: EventFactory = field(init=False)

    def __post_init__(self) -> None:
        self.make = EventFactory(self.registry, numbered=True)

    def case(self) -> Case:
        return Case(self, uuid.uuid4())

    def make_now(self) -> EventFactory:
        """The factory, its next event at the clock's now."""
        return self.make.at(self.clock.now())

    async def send(self, event: E) -> E:
        await self.producer.send_and_wait(
            topics.CASES, event.to_json(), key=str(event.subject).encode()
        )
        return event

    async def records(
        self, topic: str, case_id: UUID, *, count: int = 1, timeout: float = 10.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        return await read_until(self.bootstrap, topic, keyed(case_id), count=count, timeout=timeout)

    async def events(
        self, topic: str, case_id: UUID, name: str, *, count: int = 1, timeout: float = 10.0
    ) -> list[Any]:
        """The events named `name` of the case on `topic`, oldest first (at least `count`)."""
        wanted = f"nl.overheid.ketenzaken.{name}".encode()

        def match(record: ConsumerRecord[bytes, bytes]) -> bool:
            return record.key == str(case_id).encode() and wanted in (record.value or b"")

        found = await read_until(self.bootstrap, topic, match, count=count, timeout=timeout)
        return sorted((parse_event(r.value or b"") for r in found), key=lambda e: e.time)

    async def all_events(self, topic: str, case_id: UUID, name: str) -> list[Any]:
        """The `name` events of the case on `topic` right now (none is a valid answer)."""
        wanted = f"nl.overheid.ketenzaken.{name}".encode()
        found = await read_all(
            self.bootstrap,
            topic,
            lambda r: r.key == str(case_id).encode() and wanted in (r.value or b""),
        )
        return sorted((parse_event(r.value or b"") for r in found), key=lambda e: e.time)

    async def raised(
        self, case_id: UUID, *, count: int = 1, timeout: float = 10.0
    ) -> list[EscalationRaised]:
        found: list[EscalationRaised] = await self.events(
            topics.ESCALATIONS, case_id, "escalation-raised", count=count, timeout=timeout
        )
        return found

    def is_operator(self, event: CaseEvent[Any]) -> bool:
        return oin_of_source(event.source) == self.registry.operator.oin


@dataclass
class Case:
    """One case's story, told event by event."""

    bus: Bus
    case_id: UUID

    async def open(
        self,
        by: str = "belastingdienst",
        *,
        category: str = "schulden",
        flags: list[CaseFlag] | None = None,
        path: EscalationPath | None = None,
    ) -> CaseOpened:
        event = self.bus.make_now().opened(self.case_id, by, category, flags=flags, path=path)
        return await self.bus.send(event)

    async def update(self, by: str, flags: list[CaseFlag]) -> CaseContextUpdated:
        context = CaseContext(flags=flags)
        return await self.bus.send(
            self.bus.make_now().context_updated(self.case_id, by, context=context)
        )

    async def request(self, frm: str, to: str, *, within: timedelta) -> HandoffRequested:
        now = self.bus.clock.now()
        event = self.bus.make.at(now).requested(
            self.case_id, uuid.uuid4(), frm, to, deadline=now + within
        )
        return await self.bus.send(event)

    async def accept(self, request: HandoffRequested) -> HandoffAccepted:
        handoff = request.data
        event = self.bus.make_now().accepted(
            self.case_id, handoff.handoff_id, handoff.from_agency, handoff.to_agency
        )
        return await self.bus.send(event)

    async def reject(self, request: HandoffRequested, rule: str) -> HandoffRejected:
        handoff = request.data
        event = self.bus.make_now().rejected(
            self.case_id,
            handoff.handoff_id,
            handoff.from_agency,
            handoff.to_agency,
            rule_reference=rule,
        )
        return await self.bus.send(event)

    async def ask_escalation(self, by: str, level: int | None = None) -> EscalationRequested:
        event = self.bus.make_now().escalation_requested(
            self.case_id, by, "Wgs art. 4", level=level
        )
        return await self.bus.send(event)

    async def acknowledge(self, raised: EscalationRaised, by: str = "") -> EscalationAcknowledged:
        escalation = raised.data
        event = self.bus.make_now().escalation_acknowledged(
            self.case_id, escalation.escalation_id, escalation.level, escalation.team, by
        )
        return await self.bus.send(event)

    async def resolve(self, raised: EscalationRaised, outcome: str = "maatwerk-granted") -> None:
        team = raised.data.team
        event = self.bus.make_now().escalation_resolved(
            self.case_id,
            raised.data.escalation_id,
            outcome,  # type: ignore[arg-type]
            by=team.agency,
            team=TeamRef(agency=team.agency, team=team.team),
        )
        await self.bus.send(event)

    async def close(self, by: str = "belastingdienst") -> None:
        await self.bus.send(self.bus.make_now().closed(self.case_id, by))
