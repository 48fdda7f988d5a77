"""One batch of outbox messages delivered: checked, admitted on the case's custody, audited.

Worker processes verify a batch's signatures while the event loop checks its
first share itself (`services.router._verifier`). A large batch goes in parts
of `PART` messages, each as a batch of its own, the workers verifying the
parts after it. A batch, or a part, in one database transaction:
1. lock the custody of the cases the batch touches (`services.custody`);
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
audited then, and consumers deduplicate. When a batch comes again, the
refusals of its records are produced again (the router keeps no record of
them): dead letters and notices are at least once, as the README says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import topics
from contracts.audit import AuditEntry, record_json, trusted_entry
from contracts.envelope import CONTENT_TYPE
from services import custody
from services.audit import append, new_chain
from services.router import minimise
from services.router._verifier import Verdict, Verifier
from services.router.rights import admit
from services.router.routing import Admitted, CaseRouting, OutboxMessage
from services.runtime.kafka.clients import Outgoing
from services.runtime.observability.logging import get_logger
from services.runtime.store.bulk import insert_rows
from services.runtime.store.chunks import chunks
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import router_seen_events

log = get_logger("ketenbus.router")

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]

HEADERS = {"content-type": CONTENT_TYPE}

Position = tuple[str, int, int]
"""Where a record was read: topic, partition, offset."""

PART = 500
"""Messages per part of a large batch: the workers verify the next parts' signatures
while the event loop delivers this one. The first parts are smaller (`_parts`)."""

VERIFIED_FROM = 16
"""Batches at least this large have the workers verify all signatures but a first share;
below it the hop to a worker and back costs about what it would take off the event loop."""

INLINE_SHARE = 0.35
"""The share of a batch below VERIFIED_APART that the event loop checks itself while the
workers verify the rest. A check in the loop costs ~90 µs (~70 of them the signature),
applying a worker's verdict ~20: both sides finish at about the same time."""

VERIFIED_APART = 2 * PART
"""Batches at least this large are delivered in parts (`_parts`)."""


@dataclass(slots=True)
class Delivered:
    """What a batch produced, for the caller's counts."""

    routed: int = 0
    refused: int = 0
    audited: int = 0

    def add(self, other: Delivered) -> None:
        self.routed += other.routed
        self.refused += other.refused
        self.audited += other.audited


class Delivery:
    """Delivers batches for one router instance."""

    def __init__(
        self,
        engine: AsyncEngine,
        routing: CaseRouting,
        publish: Publish,
        *,
        verifier: Verifier | None = None,
    ) -> None:
        self.engine = engine
        self.routing = routing
        self.publish = publish
        self.verifier = verifier
        self.grants = minimise.Grants(routing.registry)
        # Its own chain: two routers never wait for each other's audit head.
        self.audit_chain = new_chain("router")

    async def handle(self, messages: Sequence[OutboxMessage]) -> Delivered:
        """Deliver a batch; raise to have it come again.

        The event loop checks a first share of the batch while the workers
        verify the signatures of the rest. A large batch is delivered in parts,
        each in its own transaction, the workers verifying ahead. When a part
        fails, the parts before it are committed and produced already; the batch
        comes again and their records are recognised as redelivered (`_deliver`).
        """
        if self.verifier is None or len(messages) < VERIFIED_FROM:
            return await self._deliver(messages, [self.routing.check(m) for m in messages])
        if len(messages) < VERIFIED_APART:
            return await self._deliver(messages, await self._shared_checks(messages, self.verifier))
        parts = _parts(messages)
        pending = [self.verifier.submit([m.value for m in part]) for part in parts[1:]]
        done = Delivered()
        try:
            # The first part is checked here while the workers verify the parts after it.
            done.add(await self._deliver(parts[0], [self.routing.check(m) for m in parts[0]]))
            for part, verdicts in zip(parts[1:], pending, strict=True):
                checked = self._checked(part, await verdicts)
                done.add(await self._deliver(part, checked))
        finally:
            for verdicts in pending:
                verdicts.cancel()  # the parts after a failed one: the batch comes again
        return done

    async def _shared_checks(
        self, messages: Sequence[OutboxMessage], verifier: Verifier
    ) -> list[Admitted | list[Outgoing]]:
        """The checks of a batch, its first share here while the workers verify the rest."""
        inline = round(len(messages) * INLINE_SHARE)
        rest = messages[inline:]
        verdicts = verifier.submit([m.value for m in rest])
        try:
            checks = [self.routing.check(m) for m in messages[:inline]]
            return checks + self._checked(rest, await verdicts)
        finally:
            verdicts.cancel()  # when a check raised: the batch comes again

    def _checked(
        self, messages: Sequence[OutboxMessage], verdicts: Sequence[Verdict]
    ) -> list[Admitted | list[Outgoing]]:
        return [
            self.routing.check(message, verdict)
            for message, verdict in zip(messages, verdicts, strict=True)
        ]

    async def _deliver(
        self, messages: Sequence[OutboxMessage], checks: Sequence[Admitted | list[Outgoing]]
    ) -> Delivered:
        out: list[Outgoing] = []
        admitted: list[Admitted] = []
        for checked in checks:
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
            records = await append(connection, entries, chain=self.audit_chain) if entries else []
            # Each audit record in its event's chain (the key and correlation id of its copy).
            out += [
                Outgoing(topics.AUDIT, copy.key, record_json(r), {}, copy.correlation_id)
                for r, copy in zip(records, copies, strict=True)
            ]
            done.audited = len(records)
            await self.publish(out)
        return done

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
        out = [Outgoing(topics.CASES, key, item.value, HEADERS, chain)]
        category = self.grants.category(ledger.cases[event.subject].state.category)
        if category is None:
            return out  # checked at case-opened; a registry changed since then grants nothing
        data = item.document.get("data")
        grants = self.grants.of(
            event.name, data if isinstance(data, dict) else {}, category, item.agency.code
        )
        for copy in minimise.deliveries(item.document, item.value, grants):
            out.append(Outgoing(topics.inbox(copy.receiver), key, copy.value, HEADERS, chain))
            copies.append(out[-1])
            # Every value comes from the validated event and registry.
            entries.append(
                trusted_entry(
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
    for chunk in chunks(event_ids):
        query = select(t.event_id, t.topic, t.partition, t.offset).where(t.event_id.in_(chunk))
        for row in await connection.execute(query):
            found[row.event_id] = (row.topic, row.partition, row.offset)
    return found


_SEEN_COLUMNS = ("event_id", "seen_at", "topic", "partition", "offset")


def _seen_row(item: Admitted, now: datetime) -> tuple[object, ...]:
    message = item.message
    return (item.event.id, now, message.topic, message.partition, message.offset)


def _parts(messages: Sequence[OutboxMessage]) -> list[Sequence[OutboxMessage]]:
    """The batch in parts of PART messages, after smaller ones (PART/4, then PART/2).

    The event loop checks the first, small part itself, and while it delivers
    it the workers get ahead.
    """
    parts: list[Sequence[OutboxMessage]] = []
    start, size = 0, PART // 4
    while start < len(messages):
        parts.append(messages[start : start + size])
        start, size = start + size, min(2 * size, PART)
    return parts
