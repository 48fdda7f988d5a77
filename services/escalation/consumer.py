"""Batches from the case log into escalation state, in one transaction, then commit offsets.

Per batch: skip the events the rules do nothing with (`react.inert`: the
service's own raises coming back) and event ids applied before; lock the cases
the batch touches; apply each event's rules; write cases, escalations, timers
and the seen ids; produce what the rules emitted (escalations raised at once,
refusals) and wait for Kafka's acks; then commit the transaction. FastStream
commits the offsets only after the handler returns (`AckPolicy.NACK_ON_ERROR`),
so:
- producing fails: the transaction rolls back and the batch comes again;
- the commit fails after producing: the batch comes again and emits the same
  events again, under the same derived ids, which consumers deduplicate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import CaseEvent
from contracts.events import HandoffExpired
from contracts.handoff import OPERATOR, actor_of
from contracts.parse import EventRejected
from services.escalation import store, timers
from services.escalation.audit import audited
from services.escalation.fire import deadline_timer_id, expiry_raise_id
from services.escalation.levels import Context
from services.escalation.react import inert, react
from services.escalation.workspace import Workspace, log_notes
from services.escalation.writes import writing
from services.runtime.consumer.case_log import case_event_of
from services.runtime.kafka.clients import Outgoing
from services.runtime.kafka.refusals import Origin

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]

Applicable = tuple[Any, CaseEvent[Any], str]
"""A record, its event, and whose act the event is (`actor_of`)."""


class CaseLogConsumer:
    def __init__(
        self,
        engine: AsyncEngine,
        context: Callable[[], Context],
        publish: Publish,
        on_timers_set: Callable[[datetime], None],
    ) -> None:
        self.engine = engine
        self.context = context
        self.publish = publish
        self.on_timers_set = on_timers_set

    async def handle(self, records: Sequence[Any]) -> None:
        """Apply a batch of aiokafka ConsumerRecords; raise to have it redelivered."""
        registry = self.context().registry
        parsed: list[Applicable] = []
        for record in records:
            try:
                event: CaseEvent[Any] | None = case_event_of(record)
            except EventRejected:
                event = None
            actor = None if event is None else actor_of(event, registry)
            # The service's own raises come back here by the thousand: no load for them.
            if event is not None and actor is not None and not inert(event, actor):
                parsed.append((record, event, actor))
        ws = await self._apply(parsed)
        if ws is not None:
            log_notes(ws)
            dues = [timer.due_at for timer in ws.timers.values()]
            dues += [hasten.due_at for hasten in ws.hastened]
            if dues:
                self.on_timers_set(min(dues))

    async def _apply(self, parsed: list[Applicable]) -> Workspace | None:
        fresh: dict[UUID, Applicable] = {}
        for item in parsed:
            fresh.setdefault(item[1].id, item)
        if not fresh:
            return None
        ctx = self.context()
        async with writing(self.engine) as connection:
            ws = await store.load(connection, {e.subject for _, e, _ in fresh.values()}, lock=True)
            seen = await store.seen_ids(connection, list(fresh))
            new = [item for key, item in fresh.items() if key not in seen]
            ws.already_out.update(await _raised_by_rounds(connection, new))
            for record, event, actor in new:
                origin = Origin(
                    record.topic, record.partition, record.offset, record.key, record.value
                )
                react(ws, ctx, event, actor, origin)
            await store.save(connection, ws, [event.id for _, event, _ in new])
            await self.publish(await audited(connection, ws.outbox, ws.files, ctx))
        return ws


async def _raised_by_rounds(connection: AsyncConnection, new: list[Applicable]) -> set[UUID]:
    """The raises of this batch's expiries that their timer rounds produced already.

    A round produces an expiry and its escalation, then records both; an expiry
    read back from the case log in between finds the escalation unrecorded, and
    `react` records it (as it must if the round died). Produced again, it would
    reach the team twice, so a raise its round has produced is only recorded.
    """
    deadlines = [
        deadline_timer_id(event)
        for _, event, actor in new
        if isinstance(event, HandoffExpired) and actor == OPERATOR
    ]
    if not deadlines:
        return set()
    return {expiry_raise_id(i) for i in await timers.produced(connection, deadlines)}
