"""One batch of outbox messages delivered: checked, admitted on the case's custody, audited.

In one database transaction:
1. lock the custody of the cases the batch touches (`services.runtime.custody`);
2. refuse an event id delivered before (in an earlier batch or this one), and
   skip without a word a record delivered before (its batch came again because
   the offsets were not committed after the transaction was);
3. check holder rights (`rights.admit`), in the order the messages came;
4. cut each receiver's copy down to its grant (`minimise`);
5. append one audit record per inbox copy to the hash chain (`services.audit`);
6. produce the case log, the inbox copies, the audit records and the refusals,
   and wait for Kafka's acks;
7. commit.
The audit records are written before anything is produced: when the store
cannot take them the batch fails before a single copy goes out, and comes
again (fail-closed). A failure at the commit itself, after producing, brings
the batch back too; it is then delivered again under the same event ids and
audited then, and consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import topics
from contracts.audit import AuditEntry
from contracts.envelope import CONTENT_TYPE
from services.audit import append
from services.router import minimise
from services.router.rights import admit
from services.router.routing import Admitted, CaseRouting, OutboxMessage
from services.runtime import custody
from services.runtime.bulk import insert_rows
from services.runtime.kafka import Outgoing
from services.runtime.logging import get_logger
from services.runtime.store import write_transaction
from services.runtime.tables import router_seen_events

log = get_logger("ketenbus.router")

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]

HEADERS = {"content-type": CONTENT_TYPE}

Position = tuple[str, int, int]
"""Where a record was read: topic, partition, offset."""

CHECK_CHUNK = 200
"""Messages per thread-pool task when a batch's stateless checks run off the event loop."""


def check_pool() -> Executor | None:
    """Threads for the stateless checks of large batches; None on a single core.

    PyNaCl's verify releases the GIL, so on more than one core signatures are
    checked in parallel; the event loop meanwhile keeps fetching and
    heartbeating. The threads are daemon-like and end with the process.
    """
    cores = os.cpu_count() or 1
    if cores == 1:  # one core: threads would only add switching
        return None
    return ThreadPoolExecutor(max_workers=min(cores, 4), thread_name_prefix="router-check")


@dataclass(slots=True)
class Delivered:
    """What a batch produced, for the caller's counts."""

    routed: int = 0
    refused: int = 0
    audited: int = 0


class Delivery:
    """Delivers batches for one router instance."""

    def __init__(
        self,
        engine: AsyncEngine,
        routing: CaseRouting,
        publish: Publish,
        *,
        checkers: Executor | None = None,
    ) -> None:
        self.engine = engine
        self.routing = routing
        self.publish = publish
        self.checkers = checkers
        self.grants = minimise.Grants(routing.registry)

    async def handle(self, messages: Sequence[OutboxMessage]) -> Delivered:
        """Deliver a batch; raise to have it come again (nothing of it is committed then)."""
        return await self._deliver(messages)

    async def _deliver(self, messages: Sequence[OutboxMessage]) -> Delivered:
        out: list[Outgoing] = []
        admitted: list[Admitted] = []
        for checked in await self._checked(messages):
            if isinstance(checked, Admitted):
                admitted.append(checked)
            else:
                out += checked
        done = Delivered(refused=len(messages) - len(admitted))
        if not admitted:
            await self.publish(out)
            return done
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as connection:
            ledger = await custody.load(connection, {a.event.subject for a in admitted})
            seen = await _seen(connection, [a.event.id for a in admitted])
            entries: list[AuditEntry] = []
            copies: list[Outgoing] = []  # the inbox copy each entry audits
            fresh: list[Admitted] = []
            for item in admitted:
                message = item.message
                if seen.get(item.event.id) == (message.topic, message.partition, message.offset):
                    # This very record, delivered and committed before its offset was: a
                    # redelivered batch. Its copies are out already; it is no replay.
                    continue
                refusal = self._refusal(item, ledger, seen)
                if refusal is not None:
                    out += self.routing.refuse(item.message, item.agency, item.event, *refusal)
                    done.refused += 1
                    continue
                seen[item.event.id] = (message.topic, message.partition, message.offset)
                fresh.append(item)
                out += self._copies(item, ledger, now, entries, copies)
                done.routed += 1
            await custody.save(connection, ledger)
            await insert_rows(
                connection, router_seen_events, _SEEN_COLUMNS, [_seen_row(i, now) for i in fresh]
            )
            records = await append(connection, entries) if entries else []
            # Each audit record in its event's chain (the key and correlation id of its copy).
            out += [
                Outgoing(
                    topics.AUDIT, copy.key, r.model_dump_json().encode(), {}, copy.correlation_id
                )
                for r, copy in zip(records, copies, strict=True)
            ]
            done.audited = len(records)
            await self.publish(out)
        return done

    async def _checked(self, messages: Sequence[OutboxMessage]) -> list[Admitted | list[Outgoing]]:
        """Each message's stateless checks, in order; a large batch's in the thread pool."""
        if self.checkers is None or len(messages) < 2 * CHECK_CHUNK:
            return [self.routing.check(message) for message in messages]
        loop = asyncio.get_running_loop()
        chunks = [messages[i : i + CHECK_CHUNK] for i in range(0, len(messages), CHECK_CHUNK)]
        # Each task in a copy of this context, so a refusal's log lines keep what is bound to it.
        results = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self.checkers, contextvars.copy_context().run, self._check_chunk, chunk
                )
                for chunk in chunks
            )
        )
        return [checked for result in results for checked in result]

    def _check_chunk(self, messages: Sequence[OutboxMessage]) -> list[Admitted | list[Outgoing]]:
        return [self.routing.check(message) for message in messages]

    def _refusal(
        self, item: Admitted, ledger: custody.Ledger, seen: Mapping[UUID, Position]
    ) -> tuple[str, str] | None:
        event = item.event
        if event.id in seen:
            return (
                "duplicate-event-id",
                f"id: event {event.id} was delivered before; an event id is delivered once",
            )
        reason = admit(ledger, self.routing.registry, event, item.agency.code)
        return None if reason is None else ("not-permitted", reason)

    def _copies(
        self,
        item: Admitted,
        ledger: custody.Ledger,
        now: datetime,
        entries: list[AuditEntry],
        copies: list[Outgoing],
    ) -> list[Outgoing]:
        """The case-log record and each receiver's copy; an audit entry per copy (and the copy
        beside it in `copies`)."""
        event = item.event
        key = str(event.subject).encode()
        chain = str(event.correlationid)
        out = [Outgoing(topics.CASES, key, item.message.value, HEADERS, chain)]
        category = self.grants.category(ledger.cases[event.subject].state.category)
        if category is None:
            return out  # checked at case-opened; a registry changed since then grants nothing
        data = item.document.get("data")
        grants = self.grants.of(
            event.name, data if isinstance(data, dict) else {}, category, item.agency.code
        )
        for copy in minimise.deliveries(item.document, item.message.value, grants):
            out.append(Outgoing(topics.inbox(copy.receiver), key, copy.value, HEADERS, chain))
            copies.append(out[-1])
            entries.append(
                AuditEntry(
                    case_id=event.subject,
                    event_id=event.id,
                    event_type=event.name,
                    receiver=copy.receiver,
                    fields=copy.fields,
                    purpose=copy.grant.purpose,
                    legal_basis=copy.grant.legal_basis,
                    delivered_at=now,
                )
            )
        return out


async def _seen(connection: AsyncConnection, event_ids: list[UUID]) -> dict[UUID, Position]:
    """Where each of these event ids was read when the router delivered it."""
    found: dict[UUID, Position] = {}
    t = router_seen_events.c
    for start in range(0, len(event_ids), custody.CHUNK):
        chunk = event_ids[start : start + custody.CHUNK]
        query = select(t.event_id, t.topic, t.partition, t.offset).where(t.event_id.in_(chunk))
        for row in await connection.execute(query):
            found[row.event_id] = (row.topic, row.partition, row.offset)
    return found


_SEEN_COLUMNS = ("event_id", "seen_at", "topic", "partition", "offset")


def _seen_row(item: Admitted, now: datetime) -> tuple[object, ...]:
    message = item.message
    return (item.event.id, now, message.topic, message.partition, message.offset)
