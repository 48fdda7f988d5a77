"""Publish as an agency system would: to its own outbox, keyed by case, numbered, timed, signed.

Every event's `time` comes from the simulation's clock (the one the services
share), so the verdict can compare event times with deadlines the services
computed on that same clock. Produces are not awaited one by one: thousands
of cases would then move at the pace of one broker round trip; the
acknowledgements are collected and checked when the run drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.envelope import CaseEvent, source_urn
from contracts.registry import AgencyRegistry
from services.runtime.process.clock import Clock

SYSTEM = "ketenbus-simulatie"
"""The system name in the simulated agencies' `source` URNs."""

E = TypeVar("E", bound=CaseEvent[Any])


class Outboxes:
    """Events from simulated agencies and teams, onto their agency's outbox."""

    def __init__(
        self,
        registry: AgencyRegistry,
        producer: AIOKafkaProducer,
        clock: Clock,
        keys: Mapping[str, AgencyKeys],
    ) -> None:
        self.registry = registry
        self.keys = keys
        self.producer = producer
        self.clock = clock
        self.sent = 0
        self._sequences: dict[tuple[UUID, str], int] = {}
        self._unacked: set[asyncio.Future[Any]] = set()
        self._failed: list[BaseException] = []

    def source(self, agency: str) -> str:
        found = self.registry.agency(agency)
        if found is None:
            raise ValueError(f"agency {agency!r} is not in the registry")
        return source_urn(found.oin, SYSTEM)

    async def emit(
        self,
        agency: str,
        kind: type[E],
        case_id: UUID,
        data: BaseModel,
        *,
        causation: UUID | None = None,
    ) -> E:
        """Build the event at the clock's now and hand it to the producer."""
        number = self._sequences.get((case_id, agency), 0) + 1
        self._sequences[(case_id, agency)] = number
        event = kind.new(
            source=self.source(agency),
            case_id=case_id,
            sequence=number,
            causationid=causation,
            time=self.clock.now(),
            data=data,
        )
        sent = await self.producer.send(
            topics.outbox(agency), self.keys[agency].sign(event), key=str(case_id).encode()
        )
        self.sent += 1
        self._unacked.add(sent)
        sent.add_done_callback(self._acked)
        return event

    def _acked(self, sent: asyncio.Future[Any]) -> None:
        self._unacked.discard(sent)
        if not sent.cancelled() and sent.exception() is not None:
            self._failed.append(sent.exception())  # type: ignore[arg-type]

    async def flush(self) -> None:
        """Wait for every produce; raise the first failure, if any."""
        await self.producer.flush()
        if self._unacked:
            await asyncio.gather(*self._unacked, return_exceptions=True)
        if self._failed:
            raise RuntimeError(f"{len(self._failed)} simulated events were not published") from (
                self._failed[0]
            )
