"""The simulated agencies' behaviour: a few handoff chains, answered through the inboxes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext, CaseFlag, MoneyAmount, PersonalSection
from contracts.envelope import CaseEvent, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseOpened,
    CaseOpening,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
)
from contracts.parse import EventRejected, parse_event
from contracts.registry import AgencyRegistry
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.demo")

CHAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("schulden", ("belastingdienst", "gm0363", "cjib")),
    ("toeslagen-herstel", ("toeslagen", "gm0363", "uwv")),
    ("uitkering", ("uwv", "svb", "gm0363")),
)
REJECTIONS = (
    ("Geen bevoegdheid voor dit type schuld", "Invorderingswet 1990, art. 25"),
    ("Eerst herstelbeslissing nodig", "Wet hersteloperatie toeslagen, art. 2.1"),
    ("Geen inschrijving in deze gemeente", "Wet gemeentelijke schuldhulpverlening, art. 2"),
)
MAX_REJECTIONS = 2


@dataclass
class DemoCase:
    case_id: UUID
    category: str
    chain: tuple[str, ...]
    holder: str
    position: int = 0
    rejections: int = 0
    closed: bool = False
    sequence: dict[str, int] = field(default_factory=dict)

    def next_sequence(self, agency: str) -> int:
        self.sequence[agency] = self.sequence.get(agency, 0) + 1
        return self.sequence[agency]


class SimulatedAgencies:
    def __init__(
        self,
        registry: AgencyRegistry,
        producer: AIOKafkaProducer,
        keys: Mapping[str, AgencyKeys],
        seed: int | None,
    ) -> None:
        self.registry = registry
        self.producer = producer
        self.keys = keys
        self.random = random.Random(seed)
        self.cases: dict[UUID, DemoCase] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.opened = 0

    def _source(self, agency: str) -> str:
        found = self.registry.agency(agency)
        assert found is not None, agency
        return source_urn(found.oin, "demo-zaaksysteem")

    async def _emit(self, agency: str, event: CaseEvent[Any]) -> None:
        await self.producer.send_and_wait(
            topics.outbox(agency), self.keys[agency].sign(event), key=str(event.subject).encode()
        )

    def later(self, low: float, high: float, action: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(self.random.uniform(low, high))
            await action()

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def open_case(self) -> None:
        category, chain = self.random.choice(CHAINS)
        case = DemoCase(uuid.uuid4(), category, chain, holder=chain[0])
        self.cases[case.case_id] = case
        self.opened += 1
        now = datetime.now(UTC)
        flags = []
        if self.random.random() < 0.1:
            flags.append(
                CaseFlag(kind="hardship", raised_by=chain[0], note="Dreigende huisuitzetting")
            )
        context = CaseContext(
            actions=[
                ActionTaken(at=now, agency=chain[0], description="Betalingsregeling aangeboden")
            ],
            flags=flags,
        )
        opened = CaseOpened.new(
            source=self._source(chain[0]),
            case_id=case.case_id,
            sequence=case.next_sequence(chain[0]),
            data=CaseOpening(
                category=category, summary="Meerdere schulden bij overheden", context=context
            ),
        )
        await self._emit(chain[0], opened)
        log.info(
            "demo case opened", case_id=str(case.case_id), holder=case.holder, category=category
        )
        await self.request_next(case, causation=opened.id)

    async def request_next(self, case: DemoCase, causation: UUID | None) -> None:
        if case.position + 1 >= len(case.chain):
            await self.close(case)
            return
        receiver = case.chain[case.position + 1]
        # The receiver needs the citizen's details; they travel sealed for it alone.
        personal = self.keys[case.holder].seal(self._citizen(), [receiver], self.registry)
        request = HandoffRequested.new(
            source=self._source(case.holder),
            case_id=case.case_id,
            sequence=case.next_sequence(case.holder),
            causationid=causation,
            data=HandoffRequest(
                handoff_id=uuid.uuid4(),
                from_agency=case.holder,
                to_agency=receiver,
                reason="Overdracht voor vervolgstap in het traject",
                deadline=datetime.now(UTC) + timedelta(days=2),
                context=CaseContext(personal=personal),
            ),
        )
        await self._emit(case.holder, request)

    def _citizen(self) -> PersonalSection:
        """Made-up details for the demo, never a real person."""
        number = self.random.randrange(100)
        return PersonalSection(
            bsn=f"9999999{number:02d}",
            name=f"Demo Burger {number}",
            amounts=[MoneyAmount(label="Openstaande schuld", cents=self.random.randrange(10**6))],
        )

    async def close(self, case: DemoCase) -> None:
        case.closed = True
        await self._emit(
            case.holder,
            CaseClosed.new(
                source=self._source(case.holder),
                case_id=case.case_id,
                sequence=case.next_sequence(case.holder),
                data=CaseClosure(outcome="Traject afgerond"),
            ),
        )
        self.cases.pop(case.case_id, None)

    async def on_inbox(self, agency: str, event: CaseEvent[Any]) -> None:
        case = self.cases.get(event.subject)
        if case is None or case.closed:
            return
        if isinstance(event, HandoffRequested) and event.data.to_agency == agency:
            self.later(0.3, 1.5, lambda: self.answer(case, event))
        elif isinstance(event, HandoffAccepted) and event.data.from_agency == agency:
            case.holder, case.position = event.data.to_agency, case.position + 1
            self.later(1.0, 3.0, lambda: self.request_next(case, event.id))
        elif isinstance(event, HandoffRejected) and event.data.from_agency == agency:
            case.rejections += 1
            if case.rejections > MAX_REJECTIONS:
                self.later(0.5, 1.5, lambda: self.close(case))
            else:
                self.later(0.5, 2.0, lambda: self.request_next(case, event.id))

    async def answer(self, case: DemoCase, request: HandoffRequested) -> None:
        data = request.data
        me = data.to_agency
        common: dict[str, Any] = {
            "source": self._source(me),
            "case_id": case.case_id,
            "sequence": case.next_sequence(me),
            "causationid": request.id,
        }
        if self.random.random() < 0.75:
            answer: CaseEvent[Any] = HandoffAccepted.new(
                **common,
                data=HandoffAcceptance(
                    handoff_id=data.handoff_id, from_agency=data.from_agency, to_agency=me
                ),
            )
        else:
            reason, rule = self.random.choice(REJECTIONS)
            answer = HandoffRejected.new(
                **common,
                data=HandoffRejection(
                    handoff_id=data.handoff_id,
                    from_agency=data.from_agency,
                    to_agency=me,
                    reason=reason,
                    rule_reference=rule,
                ),
            )
        await self._emit(me, answer)


async def run_demo(
    registry: AgencyRegistry,
    bootstrap: str,
    keys: Mapping[str, AgencyKeys],
    *,
    cases: int | None = None,
    interval: float = 1.5,
    seed: int | None = None,
    stop: asyncio.Event | None = None,
    security: Mapping[str, Any] | None = None,
) -> int:
    """Open a case every `interval` s until `cases` are open (or a signal); return the count.

    `security`: the Kafka clients' security options
    (`services.runtime.kafka.clients.client_security`).
    """
    security = security or {}
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **security)
    inboxes = [topics.inbox(agency.code) for agency in registry.agencies]
    consumer = AIOKafkaConsumer(
        *inboxes,
        bootstrap_servers=bootstrap,
        group_id=f"ketenbus-demo-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        session_timeout_ms=2_000,
        heartbeat_interval_ms=500,
        **security,
    )
    await producer.start()
    await consumer.start()
    agencies = SimulatedAgencies(registry, producer, keys, seed)
    reader = asyncio.create_task(_read_inboxes(consumer, agencies))
    try:
        while not stop.is_set() and (cases is None or agencies.opened < cases):
            await agencies.open_case()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        reader.cancel()
        for task in list(agencies.tasks):
            task.cancel()
        await asyncio.gather(reader, *agencies.tasks, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    return agencies.opened


async def _read_inboxes(consumer: AIOKafkaConsumer, agencies: SimulatedAgencies) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        for partition, records in batches.items():
            agency = partition.topic.split(".")[1]
            for record in records:
                try:
                    event = parse_event(record.value)
                except EventRejected:
                    continue
                await agencies.on_inbox(agency, event)
