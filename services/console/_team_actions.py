"""A team's acknowledgement or resolution from the console, as an event on the case log.

The console speaks for no agency of its own: it sends as the bus operator's
`ketenbus-console` system (`contracts.handoff.console_source`), with the acting
team in `data.team`, and the escalation service and the tracker take such an
event as the act of that team's agency (`contracts.handoff.actor_of`). Each event
has a fresh id, the case's subject and correlation id (from the escalation
service's `escalation_cases`), and the escalation's latest raise as its
causation. It goes to `ketenbus.cases` keyed by case id, acknowledged by every
in-sync replica before `publish` returns, so a 202 means it is on the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.envelope import CONTENT_TYPE
from contracts.events import (
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationOutcome,
    EscalationResolution,
    EscalationResolved,
    TeamRef,
)
from contracts.handoff import console_source
from contracts.registry import AgencyRegistry
from services.runtime.store.tables import escalation_cases, escalations


@dataclass(frozen=True, slots=True)
class Target:
    """What an action on an escalation needs to know of it, as the escalation service has it."""

    escalation_id: UUID
    case_id: UUID
    correlation_id: UUID
    level: int
    team: TeamRef
    status: str
    last_raised_id: UUID

    @property
    def open(self) -> bool:
        return self.status in ("raised", "acknowledged")


async def target_of(engine: AsyncEngine, escalation_id: UUID) -> Target | None:
    """The escalation with this id and its case's correlation id, None if unknown."""
    query = (
        select(escalations, escalation_cases.c.correlation_id)
        .join(escalation_cases, escalation_cases.c.case_id == escalations.c.case_id)
        .where(escalations.c.escalation_id == escalation_id)
    )
    async with engine.connect() as connection:
        row = (await connection.execute(query)).first()
    if row is None:
        return None
    return Target(
        escalation_id=row.escalation_id,
        case_id=row.case_id,
        correlation_id=row.correlation_id,
        level=row.level,
        team=TeamRef(agency=row.team_agency, team=row.team),
        status=row.status,
        last_raised_id=row.last_raised_id,
    )


_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def _sequence(now: datetime) -> int:
    # The console keeps no counter per case, so seconds since 2025 stand in: they grow per
    # case and emitter and fit the timeline's 32-bit column for decades.
    return max(1, int((now - _EPOCH).total_seconds()))


def _envelope(registry: AgencyRegistry, target: Target, now: datetime | None) -> dict[str, Any]:
    """What both actions carry: the console as source, the case chain, answering the raise."""
    moment = now or datetime.now(UTC)
    return {
        "source": console_source(registry),
        "case_id": target.case_id,
        "correlationid": target.correlation_id,
        "causationid": target.last_raised_id,
        "sequence": _sequence(moment),
        "time": moment,
    }


def acknowledgement(
    registry: AgencyRegistry,
    target: Target,
    team: TeamRef,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> EscalationAcknowledged:
    """`team` acknowledges the escalation at the level it was alerted at."""
    return EscalationAcknowledged.new(
        **_envelope(registry, target, now),
        data=EscalationAcknowledgement(
            escalation_id=target.escalation_id, level=target.level, team=team, note=note
        ),
    )


def resolution(
    registry: AgencyRegistry,
    target: Target,
    team: TeamRef,
    *,
    outcome: EscalationOutcome,
    note: str | None = None,
    handoff_to: str | None = None,
    now: datetime | None = None,
) -> EscalationResolved:
    """`team` resolves the escalation with `outcome` (and `handoff_to` if it forces one)."""
    return EscalationResolved.new(
        **_envelope(registry, target, now),
        data=EscalationResolution(
            escalation_id=target.escalation_id,
            team=team,
            outcome=outcome,
            note=note,
            handoff_to=handoff_to,
        ),
    )


async def publish(
    producer: AIOKafkaProducer, event: EscalationAcknowledged | EscalationResolved
) -> None:
    """Produce `event` to the case log, keyed by its case, and wait for the broker's ack."""
    await producer.send_and_wait(
        topics.CASES,
        event.to_json(),
        key=str(event.subject).encode(),
        headers=[("content-type", CONTENT_TYPE.encode())],
    )
