"""Write a case's events to the case log as the router would, and read what the service emits.

The escalation service reads only `ketenbus.cases`, so the tests produce their
input there directly (key = case id, the value a valid event from a registry
source), with the times of the service's own clock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from contracts import topics
from contracts.case import CaseContext, CaseFlag, EscalationLevel, EscalationPath
from contracts.envelope import CaseEvent, oin_of_source, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseContextUpdated,
    CaseOpened,
    CaseOpening,
    ContextUpdate,
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationRaised,
    EscalationRequest,
    EscalationRequested,
    EscalationResolution,
    EscalationResolved,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
    TeamRef,
)
from contracts.parse import parse_event
from contracts.registry import AgencyRegistry
from services.runtime.clock import Clock
from tests.kafka_helpers import keyed, read_until


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
    """The case log's writer side and the readers of the service's output."""

    bootstrap: str
    registry: AgencyRegistry
    clock: Clock
    producer: AIOKafkaProducer
    sequence: dict[UUID, int] = field(default_factory=dict)

    def case(self) -> Case:
        return Case(self, uuid.uuid4())

    async def send(self, by: str, cls: type[CaseEvent[Any]], case_id: UUID, data: Any) -> Any:
        agency = self.registry.agency(by)
        assert agency is not None, by
        self.sequence[case_id] = self.sequence.get(case_id, 0) + 1
        event = cls.new(
            source=source_urn(agency.oin, "zaaksysteem"),
            case_id=case_id,
            data=data,
            sequence=self.sequence[case_id],
            time=self.clock.now(),
        )
        await self.producer.send_and_wait(topics.CASES, event.to_json(), key=str(case_id).encode())
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
        data = CaseOpening(
            category=category,
            summary="Schuldhulptraject",
            context=CaseContext(flags=flags or []),
            escalation_path=path,
        )
        event: CaseOpened = await self.bus.send(by, CaseOpened, self.case_id, data)
        return event

    async def update(self, by: str, flags: list[CaseFlag]) -> CaseContextUpdated:
        data = ContextUpdate(context=CaseContext(flags=flags))
        event: CaseContextUpdated = await self.bus.send(by, CaseContextUpdated, self.case_id, data)
        return event

    async def request(self, frm: str, to: str, *, within: timedelta) -> HandoffRequested:
        data = HandoffRequest(
            handoff_id=uuid.uuid4(),
            from_agency=frm,
            to_agency=to,
            reason="Schuldhulp",
            deadline=self.bus.clock.now() + within,
        )
        event: HandoffRequested = await self.bus.send(frm, HandoffRequested, self.case_id, data)
        return event

    async def accept(self, request: HandoffRequested) -> HandoffAccepted:
        data = HandoffAcceptance(
            handoff_id=request.data.handoff_id,
            from_agency=request.data.from_agency,
            to_agency=request.data.to_agency,
        )
        to = request.data.to_agency
        event: HandoffAccepted = await self.bus.send(to, HandoffAccepted, self.case_id, data)
        return event

    async def reject(self, request: HandoffRequested, rule: str) -> HandoffRejected:
        data = HandoffRejection(
            handoff_id=request.data.handoff_id,
            from_agency=request.data.from_agency,
            to_agency=request.data.to_agency,
            reason="Niet onze taak",
            rule_reference=rule,
        )
        to = request.data.to_agency
        event: HandoffRejected = await self.bus.send(to, HandoffRejected, self.case_id, data)
        return event

    async def ask_escalation(self, by: str, level: int | None = None) -> EscalationRequested:
        data = EscalationRequest(reason="Loopt vast", level=level, rule_reference="Wgs art. 4")
        event: EscalationRequested = await self.bus.send(
            by, EscalationRequested, self.case_id, data
        )
        return event

    async def acknowledge(self, raised: EscalationRaised, by: str = "") -> EscalationAcknowledged:
        team = raised.data.team
        data = EscalationAcknowledgement(
            escalation_id=raised.data.escalation_id, level=raised.data.level, team=team
        )
        event: EscalationAcknowledged = await self.bus.send(
            by or team.agency, EscalationAcknowledged, self.case_id, data
        )
        return event

    async def resolve(self, raised: EscalationRaised, outcome: str = "maatwerk-granted") -> None:
        team = raised.data.team
        data = EscalationResolution(
            escalation_id=raised.data.escalation_id,
            team=TeamRef(agency=team.agency, team=team.team),
            outcome=outcome,  # type: ignore[arg-type]
        )
        await self.bus.send(team.agency, EscalationResolved, self.case_id, data)

    async def close(self, by: str = "belastingdienst") -> None:
        await self.bus.send(by, CaseClosed, self.case_id, CaseClosure(outcome="Afgerond"))


def hardship(by: str = "gm0363", level: int = 1) -> CaseFlag:
    return CaseFlag(
        kind="hardship",
        raised_by=by,
        escalate_at_level=level,
        note="Dreigende huisuitzetting",
        rule_reference="Wgs art. 3",
    )
