"""The relay: produce an agency's unsent outbox rows to Kafka, then mark them sent.

Each pass takes up to `batch_size` unsent rows, oldest first, produces them
(`acks="all"`), waits for every acknowledgement and then marks the produced
rows sent in one statement; a row whose produce failed gets `attempts + 1` and
`last_error` and comes again in a later pass. A crash after producing and
before marking leaves the rows unsent: the next pass produces the same bytes
(the same event id) again, which the router's dedupe makes harmless.

Order per case: a case's rows go out in `created_at` order, one round at a
time: its second row is produced only once Kafka has acknowledged its first,
so a failed row holds back the later rows of its case (never overtaken) while
the other cases' rows go out. Rows held back behind a failed row are not even
read until it is sent, so they never take other cases' places in a batch.

Several relays on one database: where the database has `FOR UPDATE SKIP LOCKED`
(PostgreSQL), a pass locks its rows in the transaction that marks them, so two
relays never produce the same row in one pass, and a relay produces a case's
row only when every earlier unsent row of that case is its own too. SQLite has
one writer at a time and no row locks: run one relay per SQLite database. There
the rows are read outside the write lock, so the agency's own transactions do
not wait for Kafka's acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import Select, Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.agency_outbox.table import outbox_events
from services.runtime.consumer.backoff import Backoff
from services.runtime.kafka.clients import CLOUDEVENTS_JSON
from services.runtime.observability.logging import get_logger
from services.runtime.observability.metrics import emit_span
from services.runtime.store.engine import write_transaction

log = get_logger("ketenbus.agency_outbox")

_ERROR_CHARS = 1_000
"""How much of a produce error a row keeps in `last_error`."""


@dataclass(frozen=True, slots=True)
class _Row:
    id: UUID
    case_id: UUID
    topic: str
    value: bytes


@dataclass(slots=True)
class _Outcome:
    sent: list[UUID]
    failed: dict[UUID, str]


class OutboxRelay:
    """Produces an agency database's outbox rows to Kafka.

        async with OutboxRelay(engine, "kafka:9092", client_options=security) as relay:
            await relay.run(stop, interval=1.0)

    `client_options`: extra AIOKafkaProducer arguments, such as the SASL/TLS
    options the agency's Kafka user needs (the bus's own services build theirs
    with `services.runtime.kafka.clients.client_security`).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap: str,
        *,
        batch_size: int = 100,
        table: Table = outbox_events,
        request_timeout_ms: int = 15_000,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.engine = engine
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.table = table
        self._request_timeout_ms = request_timeout_ms
        self._client_options = dict(client_options or {})
        self._producer: AIOKafkaProducer | None = None
        # Row locks exist on PostgreSQL (and other servers); SQLite locks the whole file.
        self._claims = engine.dialect.name != "sqlite"

    async def start(self) -> None:
        """Connect the producer; raises KafkaError if no broker answers."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="ketenbus-agency-outbox",
            acks="all",
            # Kafka's idempotent producer is not needed: a duplicate is deduped
            # on the event id, and the embedded broker lacks it.
            enable_idempotence=False,
            linger_ms=5,
            request_timeout_ms=self._request_timeout_ms,
            **self._client_options,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Close the producer (what it still holds is flushed first)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run_once(self) -> int:
        """One pass: produce up to `batch_size` unsent rows and mark them; the number sent."""
        if self._producer is None:
            raise RuntimeError("the relay is not started: use `async with relay` or `start()`")
        if self._claims:
            # The rows stay locked until the marks commit: no other relay takes them.
            async with self.engine.begin() as connection:
                rows = await self._claim(connection)
                outcome = await self._publish(rows)
                await self._mark(connection, outcome)
        else:
            async with self.engine.connect() as connection:
                rows = await self._oldest_unsent(connection)
            outcome = await self._publish(rows)
            async with write_transaction(self.engine) as connection:
                await self._mark(connection, outcome)
        if outcome.failed:
            log.warning(
                "outbox rows not sent; they and their cases' later rows come again",
                failed=len(outcome.failed),
                first_error=next(iter(outcome.failed.values())),
            )
        return len(outcome.sent)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Pass after pass until `stop` is set.

        The next pass comes at once after a full batch, else after `interval`
        seconds; a pass that raised is logged, and the pause grows (0.5 s to 10 s).
        The producer is started here if it is not yet (and retried the same way);
        `stop()` closes it.
        """
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self.start()
                sent = await self.run_once()
            except Exception:
                # Whatever failed (the database, Kafka), a later pass may succeed.
                pause = backoff.next_pause()
                log.exception("outbox relay pass failed; retrying", pause_s=pause)
            else:
                backoff.succeeded()
                pause = 0.0 if sent == self.batch_size else interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    def _candidates(self) -> Select[UUID, UUID, str, bytes]:
        """The oldest unsent rows, but none held back behind a failed row of its case.

        Without that condition a case whose first row keeps failing could fill
        every batch with its waiting rows, and no other case would go out.
        """
        t = self.table
        earlier = t.alias("earlier")
        held = (
            select(earlier.c.id)
            .where(
                earlier.c.case_id == t.c.case_id,
                earlier.c.sent_at.is_(None),
                earlier.c.last_error.is_not(None),
                or_(
                    earlier.c.created_at < t.c.created_at,
                    and_(earlier.c.created_at == t.c.created_at, earlier.c.id < t.c.id),
                ),
            )
            .exists()
        )
        return (
            select(t.c.id, t.c.case_id, t.c.topic, t.c.value)
            .where(t.c.sent_at.is_(None), ~held)
            .order_by(t.c.created_at, t.c.id)
            .limit(self.batch_size)
        )

    async def _oldest_unsent(self, connection: AsyncConnection) -> list[_Row]:
        return [_Row(*row) for row in await connection.execute(self._candidates())]

    async def _claim(self, connection: AsyncConnection) -> list[_Row]:
        """Lock the oldest unsent rows no other relay holds; keep those this relay may produce.

        A locked row of a case is produced only if every earlier unsent row of
        that case is locked by this pass too; otherwise another relay holds an
        earlier one and producing would let this row overtake it.
        """
        t = self.table
        locked = await connection.execute(
            self._candidates().with_for_update(of=t, skip_locked=True)
        )
        rows = {row.id: _Row(*row) for row in locked}
        if not rows:
            return []
        cases = {row.case_id for row in rows.values()}
        unsent = await connection.execute(
            select(t.c.id, t.c.case_id)
            .where(t.c.sent_at.is_(None), t.c.case_id.in_(cases))
            .order_by(t.c.created_at, t.c.id)
        )
        blocked: set[UUID] = set()
        mine: list[_Row] = []
        for row_id, case_id in unsent:
            if case_id in blocked:
                continue
            if row_id in rows:
                mine.append(rows[row_id])
            else:
                blocked.add(case_id)
        return mine

    async def _publish(self, rows: Sequence[_Row]) -> _Outcome:
        """Produce `rows` (oldest first) round by round: each case's next row per round."""
        queues: dict[UUID, deque[_Row]] = {}
        for row in rows:
            queues.setdefault(row.case_id, deque()).append(row)
        outcome = _Outcome(sent=[], failed={})
        while queues:
            heads = [queue.popleft() for queue in queues.values()]
            errors = await asyncio.gather(*(self._produce(row) for row in heads))
            for row, error in zip(heads, errors, strict=True):
                if error is None:
                    outcome.sent.append(row.id)
                    if not queues[row.case_id]:
                        del queues[row.case_id]
                else:
                    outcome.failed[row.id] = error
                    del queues[row.case_id]  # the case's later rows wait for this one
        return outcome

    async def _produce(self, row: _Row) -> str | None:
        """Produce one row and wait for its acknowledgement; None, or why it failed."""
        assert self._producer is not None
        key = str(row.case_id).encode()
        try:
            # With tracing on, the row's trace starts here and travels in its headers.
            with emit_span("relay", row.topic, key) as trace_headers:
                acked = await self._producer.send(
                    row.topic,
                    row.value,
                    key=key,
                    headers=[("content-type", CLOUDEVENTS_JSON.encode()), *trace_headers],
                )
                await acked
        except KafkaError as exc:
            return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        return None

    async def _mark(self, connection: AsyncConnection, outcome: _Outcome) -> None:
        """Record the pass: the sent rows in one statement, the failed ones with their error."""
        t = self.table
        if outcome.sent:
            await connection.execute(
                update(t)
                .where(t.c.id.in_(outcome.sent))
                .values(sent_at=datetime.now(UTC), attempts=t.c.attempts + 1, last_error=None)
            )
        if outcome.failed:
            await connection.execute(
                update(t)
                .where(t.c.id == bindparam("row_id"))
                .values(attempts=t.c.attempts + 1, last_error=bindparam("error")),
                [{"row_id": row_id, "error": error} for row_id, error in outcome.failed.items()],
            )
