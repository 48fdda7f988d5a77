"""One round of claimed timers: work out their events, produce them, record them.

1. work out the events on the state as it is now, without locks;
2. produce them and wait for Kafka's acks; expiries under the lock of the
   cases' custody (`services.custody`), which they end there, so an
   answer the router let through first stops the expiry, and one that comes
   later finds the handoff ended;
3. in one transaction, lock the cases, mark each timer fired (unless another
   instance fired it meanwhile) and replay the same rules with only the
   acknowledged events allowed out, so the state records exactly what was
   announced (see `workspace`). When every event went out and the cases read
   in step 1 are unchanged, the replay would work out the same again, so what
   step 1 worked out is recorded as it is (the replay was an eighth of the
   service's CPU in `ketenbus bench timers`).
A crash between 2 and 3 leaves the claim's lease to run out; then an instance
fires the timer again with the same derived ids, which consumers deduplicate.
The round's clock time (`ctx.now`, read when the timers were claimed) stamps
every event and record, however long producing takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services import custody
from services.escalation import store, timers
from services.escalation.audit import audited_each
from services.escalation.consumer import Publish
from services.escalation.fire import fire
from services.escalation.levels import Context
from services.escalation.model import CaseFile, Timer
from services.escalation.rows import escalation_row, file_row
from services.escalation.workspace import Workspace, log, log_notes
from services.escalation.writes import writing
from services.runtime.kafka.clients import Outgoing


@dataclass(frozen=True, slots=True)
class Planned:
    """What firing one timer will produce."""

    timer: Timer
    messages: list[Outgoing]
    event_ids: list[UUID]


@dataclass(frozen=True, slots=True)
class Plan:
    """A round's plans, the workspace they were worked out on, and its state before."""

    planned: list[Planned]
    ws: Workspace
    before: Snapshot
    whole: bool
    """Every claimed timer fired without error (so `ws` holds nothing half done)."""

    def recordable(
        self, current: Workspace, published: set[UUID], marked: Mapping[UUID, str]
    ) -> bool:
        """`ws` is what replaying the rules on `current` would record.

        True when every event worked out went out, this instance fired every
        timer, and nothing changed the cases since they were read for the plan.
        """
        return (
            self.whole
            and len(marked) == len(self.planned)
            and all(m == "mine" for m in marked.values())
            and published.issuperset(self.ws.emitted)
            and snapshot(current) == self.before
        )


Snapshot = tuple[dict[UUID, dict[str, Any]], dict[UUID, dict[str, Any]], frozenset[UUID]]


def snapshot(ws: Workspace) -> Snapshot:
    """The loaded state that firing timers reads: cases, open escalations, escalation ids."""
    return (
        {key: file_row(file) for key, file in ws.files.items()},
        {key: escalation_row(e) for key, e in ws.escalations.items()},
        frozenset(ws.known_escalations),
    )


class Rounds:
    """Runs rounds for one instance; `fired` counts the timers it recorded."""

    def __init__(self, engine: AsyncEngine, publish: Publish, instance_id: str) -> None:
        self.engine = engine
        self.publish = publish
        self.instance_id = instance_id
        self.fired = 0

    async def run(self, ctx: Context, claimed: list[Timer]) -> None:
        plan = await self._plan(ctx, claimed)
        planned = plan.planned
        results = await self._produce(ctx, planned, plan.ws.files)
        done: list[Timer] = []
        published: set[UUID] = set()
        failed: list[UUID] = []
        for item, result in zip(planned, results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "timer events not produced, will retry",
                    case_id=str(item.timer.case_id),
                    timer_kind=item.timer.kind,
                    error=type(result).__name__,
                )
                failed.append(item.timer.id)
            else:
                done.append(item.timer)
                published.update(item.event_ids)
        if done:
            await self._record(ctx, done, published, plan)
        await timers.release(self.engine, failed, self.instance_id)

    async def _produce(
        self, ctx: Context, planned: list[Planned], files: Mapping[UUID, CaseFile]
    ) -> list[BaseException | None]:
        """Produce each plan's events, in a transaction that holds the custody lock of the
        expiring handoffs and their audit records, and commits once Kafka has answered.

        An expiry whose handoff the router let an answer through for meanwhile
        does not go out (its timer is recorded as fired, to no effect). The lock
        is held until Kafka has the expiries, so the router's next check on the
        case comes after them on the case log. The audit records of every inbox
        delivery are appended before anything is produced.

        The expiring timers are marked produced in the same transaction (and
        unmarked if their events did not go out): the case-log consumer may read
        an expiry before this round records it, and then records the escalation
        the round raised without producing it a second time (`react`).
        """
        expiring = [_handoff_of(plan) for plan in planned if _expires(plan)]
        async with writing(self.engine) as connection:
            marked = {plan.timer.id for plan in planned if _expires(plan)}
            await timers.mark_produced(connection, sorted(marked), ctx.now)
            outcome = await custody.end_handoffs(connection, expiring)
            for index, plan in enumerate(planned):
                if _expires(plan) and _handoff_of(plan) in outcome.answered:
                    planned[index] = Planned(plan.timer, [], [])
            sends = await audited_each(connection, [plan.messages for plan in planned], files, ctx)
            results: list[BaseException | None] = await asyncio.gather(
                *(self.publish(messages) for messages in sends), return_exceptions=True
            )
            failed = {
                _handoff_of(plan): outcome.ended[_handoff_of(plan)]
                for plan, result in zip(planned, results, strict=True)
                if isinstance(result, BaseException) and _handoff_of(plan) in outcome.ended
            }
            await custody.restore_handoffs(connection, failed)
            unsent = [
                plan.timer.id
                for plan, result in zip(planned, results, strict=True)
                if isinstance(result, BaseException) or not plan.messages
            ]
            await timers.mark_produced(connection, [i for i in unsent if i in marked], None)
        return results

    async def _plan(self, ctx: Context, claimed: list[Timer]) -> Plan:
        async with self.engine.connect() as connection:
            ws = await store.load(connection, {t.case_id for t in claimed}, lock=False)
        before = snapshot(ws)
        planned: list[Planned] = []
        for timer in claimed:
            start, first = len(ws.outbox), len(ws.emitted)
            try:
                fire(ws, ctx, timer)
            except Exception:  # noqa: BLE001 - one bad timer must not hold up the others
                log.exception(
                    "timer could not be fired", case_id=str(timer.case_id), kind=timer.kind
                )
                continue  # its lease runs out and it is tried again
            planned.append(Planned(timer, ws.outbox[start:], ws.emitted[first:]))
        return Plan(planned, ws, before, whole=len(planned) == len(claimed))

    async def _record(
        self, ctx: Context, done: list[Timer], published: set[UUID], plan: Plan
    ) -> None:
        async with writing(self.engine) as connection:
            ws: Workspace = await store.load(
                connection, {t.case_id for t in done}, lock=True, published=published
            )
            marked = await timers.mark_fired(connection, done, self.instance_id, ctx.now)
            if plan.recordable(ws, published, marked):
                ws = plan.ws  # the replay below would work out the same again
            else:
                for timer in done:
                    if marked[timer.id] != "taken":  # gone: cancelled meanwhile, events are out
                        fire(ws, ctx, timer)
            await store.save(connection, ws)
        self.fired += len(done)
        log_notes(ws)


def _expires(plan: Planned) -> bool:
    """A deadline timer that produces: the handoff's expiry."""
    return plan.timer.kind == "handoff-deadline" and bool(plan.messages)


def _handoff_of(plan: Planned) -> tuple[UUID, UUID]:
    return (plan.timer.case_id, plan.timer.ref)
