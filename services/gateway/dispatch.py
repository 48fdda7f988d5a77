"""Webhook delivery: each pending delivery POSTed to its receiver until it answers 2xx.

Per subscription, a case's deliveries go in the order its inbox had them: only
the oldest pending delivery of a (subscription, case) is tried, so a receiver
that fails one event of a case holds that case, not the others. Several
gateway instances share the work: a round claims due deliveries under a lease
(`claimed_until`: the receiver's timeout and five seconds) and whoever holds
it does the attempt; what a killed instance held is free once its lease ends.

Each POST is the inbox's copy in structured mode (`application/cloudevents+json`),
or for a `notificaties` subscription the ZGW message (`application/json`),
with the subscription's `Authorization` and a Standard Webhooks signature of
the body (`webhook-id` the event id, `webhook-timestamp`, `webhook-signature`,
HMAC-SHA256 by the subscription's secret) that the receiver checks with any
Standard Webhooks library. Every attempt is recorded (`webhook_attempts`).

The answer decides: 2xx delivered; 410 ends the subscription (and drops what it
still had to deliver); 429 waits as long as `Retry-After` says; anything else
(or no answer in `KETENBUS_WEBHOOK_TIMEOUT_S`) waits twice as long as the last
time, from `KETENBUS_WEBHOOK_RETRY_BASE_S` up to an hour, with jitter. A delivery
whose next attempt would fall beyond `KETENBUS_WEBHOOK_HORIZON` is given up:
its event goes to `ketenbus.dlq` with reason `webhook-undeliverable`, and the
agency that sent it is told in its inbox; a handoff request its receiver never
got has that notice on `ketenbus.cases` too, where the escalation service
expires and escalates the handoff at once. At least once: a receiver dedupes on
`webhook-id`, which is the same for every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from faststream.kafka import KafkaBroker
from sqlalchemy import Select, exists, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnClause
from standardwebhooks.webhooks import Webhook

from contracts import topics
from contracts.envelope import CONTENT_TYPE, source_urn
from contracts.events import HandoffRequested, ZgwNotificatie
from contracts.handoff import GATEWAY_SYSTEM, OPERATOR, emitter_of
from contracts.parse import parse_event
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from contracts.registry import AgencyRegistry
from contracts.zgw import message_of
from services.gateway import subscriptions
from services.gateway.subscriptions import NOTIFICATIES
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import publish_all
from services.runtime.kafka.refusals import Origin, refusal_messages
from services.runtime.observability.logging import get_logger
from services.runtime.store.chunks import chunks
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)

log = get_logger("ketenbus.gateway")

SYSTEM = GATEWAY_SYSTEM
"""The system name in the `source` of the notices the gateway sends."""
LEASE_MARGIN = timedelta(seconds=5)
"""A claim lasts the receiver's timeout and this: what a killed instance held is tried
again by another that soon after."""
ROUND = 50
"""Deliveries claimed per round: in flight at most, per gateway instance."""
MAX_DELAY_S = 3600.0
IDLE_S = 0.2
UNDELIVERABLE = WEBHOOK_UNDELIVERABLE
PENDING_TEXT: ColumnClause[str] = literal_column("'pending'")
"""Written into the claim's SQL, not bound, so that a generic plan of the prepared claim
(PostgreSQL, after a few runs) can use the pending deliveries' partial indexes too
(`ix_webhook_deliveries_due`, `ix_webhook_deliveries_pending_case`)."""


def webhook_client() -> httpx.AsyncClient:
    """The client deliveries go out with (the bench's floor posts with the same one)."""
    # httpx's default pool: a larger one kept more connections alive, and its pool
    # then spent more on looking through them on every request than it saved.
    return httpx.AsyncClient(follow_redirects=False)


def sent_form(delivery_format: str, body: str) -> tuple[str, str]:
    """The media type and the body a receiver is sent of a delivery's inbox copy.

    The store keeps the inbox copy in every format, so a dead letter is the
    event as it was; a `notificaties` subscription is sent the ZGW message a
    `zgw-notificatie` was made from.
    """
    if delivery_format != NOTIFICATIES:
        return CONTENT_TYPE, body
    event = parse_event(body.encode())
    assert isinstance(event, ZgwNotificatie), "inbox intake keeps only zgw-notificatie for it"
    message = json.dumps(message_of(event.data), ensure_ascii=False, separators=(",", ":"))
    return "application/json", message


def next_delay(attempts: int, base: float) -> float:
    """After the `attempts`-th failure: base, 2 base, 4 base ... at most an hour, less up to half.

    The jitter spreads the retries of receivers that failed together (an outage
    of theirs) so they do not all come back at once.
    """
    ceiling = min(MAX_DELAY_S, base * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` asks for (a number or an HTTP date); None if it says nothing."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, (parsedate_to_datetime(text) - now).total_seconds())
    return None


@dataclass(slots=True)
class Answer:
    """What one attempt got: the status (None: no answer), why it failed, how long to wait."""

    sent_at: datetime
    started: float
    status: int | None = None
    error: str | None = None
    wait: float | None = None
    duration_ms: int = 0


def due_deliveries(now: datetime, size: int) -> Select[tuple[int]]:
    """The ids of up to `size` deliveries due at `now`, each its case's oldest pending one
    for its subscription and not leased, soonest due first, locked for the claim."""
    d = webhook_deliveries.alias("d")
    earlier = webhook_deliveries.alias("earlier")
    head = ~exists(
        select(earlier.c.id).where(
            earlier.c.subscription_id == d.c.subscription_id,
            earlier.c.case_id == d.c.case_id,
            earlier.c.status == PENDING_TEXT,
            earlier.c.id < d.c.id,
        )
    )
    free = or_(d.c.claimed_until.is_(None), d.c.claimed_until < now)
    return (
        select(d.c.id)
        .where(d.c.status == PENDING_TEXT, d.c.next_attempt_at <= now, free, head)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(size)
        # Several gateways claim at once: on PostgreSQL each skips the rows another is
        # claiming instead of queueing behind it for the same earliest rows and then
        # winning none of them. SQLite has no row locks; its write lock serialises.
        .with_for_update(of=d, skip_locked=True)
    )


def _success(answer: Answer) -> bool:
    return answer.status is not None and 200 <= answer.status < 300


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        registry: AgencyRegistry,
        engine: AsyncEngine,
        broker: KafkaBroker,
        client: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self.broker = broker
        self.client = client
        self.source = source_urn(registry.operator.oin, SYSTEM)
        self.lease = timedelta(seconds=settings.webhook_timeout_s) + LEASE_MARGIN

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`; a round that finds nothing due waits a moment."""
        while not stop.is_set():
            try:
                done = await self.round()
            except Exception:
                # The store or Kafka away: the leases run out and the work comes again.
                log.exception("webhook round failed")
                done = 0
            if not done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_S)

    async def round(self, size: int = ROUND) -> int:
        """Claim the due deliveries, attempt each, record them all; how many were attempted.

        The outcomes are recorded in one transaction for the round: a transaction
        per attempt cost more than the POST itself (on SQLite, three times the
        deliveries per second; docs/performance.md).
        """
        claimed = await self._claim(datetime.now(UTC), size)
        answers = await asyncio.gather(*(self._attempt(row) for row in claimed))
        attempted = [(row, a) for row, a in zip(claimed, answers, strict=True) if a is not None]
        if attempted:
            await self._settle(attempted)
        return len(claimed)

    async def _claim(self, now: datetime, size: int) -> list[Any]:
        due = due_deliveries(now, size)
        t = webhook_deliveries.c
        async with write_transaction(self.engine) as connection:
            ids = list((await connection.execute(due)).scalars())
            if not ids:
                return []
            won = await connection.execute(
                update(webhook_deliveries)
                .where(t.id.in_(ids), or_(t.claimed_until.is_(None), t.claimed_until < now))
                .values(claimed_until=now + self.lease)
                .returning(t.id)
            )
            mine = list(won.scalars())
            s = webhook_subscriptions.c
            rows = await connection.execute(
                select(
                    webhook_deliveries,
                    s.agency,
                    s.callback_url,
                    s.authorization,
                    s.signing_secret,
                    s.delivery_format,
                    s.status.label("subscription_status"),
                )
                .join(webhook_subscriptions, s.subscription_id == t.subscription_id)
                .where(t.id.in_(mine))
            )
            return list(rows)

    async def _attempt(self, row: Any) -> Answer | None:
        """POST the delivery once; its answer (None: its subscription had ended)."""
        if row.subscription_status != "active":
            async with write_transaction(self.engine) as connection:
                await subscriptions.end(connection, row.subscription_id, "ended")
            return None
        sent_at = datetime.now(UTC)
        media, body = sent_form(row.delivery_format, row.body)
        headers = {
            "content-type": media,
            "webhook-id": str(row.event_id),
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(row.signing_secret).sign(str(row.event_id), sent_at, body),
        }
        if row.authorization:
            headers["authorization"] = row.authorization
        answer = Answer(sent_at, time.monotonic())
        try:
            response = await self.client.post(
                row.callback_url,
                content=body.encode(),
                headers=headers,
                timeout=self.settings.webhook_timeout_s,
            )
        except httpx.HTTPError as exc:
            answer.error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            answer.status = response.status_code
            answer.error = None if response.is_success else f"HTTP {response.status_code}"
            if response.status_code == 429:
                answer.wait = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        answer.duration_ms = int((time.monotonic() - answer.started) * 1000)
        return answer

    async def _settle(self, attempted: list[tuple[Any, Answer]]) -> None:
        """Record a round's attempts and outcomes in one transaction; then give up what is
        past its horizon."""
        now = datetime.now(UTC)
        given_up: list[tuple[Any, str]] = []
        async with write_transaction(self.engine) as connection:
            await connection.execute(
                insert(webhook_attempts),
                [
                    {
                        "delivery_id": row.id,
                        "attempt": row.attempts + 1,
                        "at": answer.sent_at,
                        "status": answer.status,
                        "error": answer.error,
                        "duration_ms": answer.duration_ms,
                    }
                    for row, answer in attempted
                ],
            )
            await self._delivered(connection, [(r, a) for r, a in attempted if _success(a)], now)
            for row, answer in attempted:
                if not _success(answer) and await self._outcome(connection, row, answer, now):
                    given_up.append((row, answer.error or "no answer"))
        for row, answer in attempted:
            log.info(
                "webhook attempt",
                case_id=str(row.case_id),
                event_id=str(row.event_id),
                subscription_id=str(row.subscription_id),
                attempt=row.attempts + 1,
                status=answer.status,
                error=answer.error,
            )
        for row, last in given_up:
            await self._give_up(row, last)

    async def _delivered(
        self, connection: AsyncConnection, delivered: list[tuple[Any, Answer]], now: datetime
    ) -> None:
        """The round's delivered ones, an UPDATE for each status and attempt number among
        them (mostly one): on SQLite each statement costs the process ~0.15 ms of CPU, a
        tenth of a POST's, and most rounds are all 2xx."""
        groups: dict[tuple[int, int], list[Any]] = {}
        for row, answer in delivered:
            assert answer.status is not None
            groups.setdefault((answer.status, row.attempts + 1), []).append(row.id)
        t = webhook_deliveries.c
        for (status, attempt), ids in groups.items():
            for chunk in chunks(ids):
                await connection.execute(
                    update(webhook_deliveries)
                    .where(t.id.in_(chunk))
                    .values(
                        attempts=attempt,
                        last_status=status,
                        last_error=None,
                        status="delivered",
                        finished_at=now,
                        next_attempt_at=None,
                        claimed_until=None,
                    )
                )

    async def _outcome(
        self, connection: AsyncConnection, row: Any, answer: Answer, now: datetime
    ) -> bool:
        """What a failed answer makes of the delivery; True: past its horizon, to be given up."""
        status, error, wait = answer.status, answer.error, answer.wait
        attempt = row.attempts + 1
        this = update(webhook_deliveries).where(webhook_deliveries.c.id == row.id)
        outcome = {"attempts": attempt, "last_status": status, "last_error": error}
        give_up = False
        if status == 410:
            await connection.execute(this.values(**outcome))
            await subscriptions.end(
                connection, row.subscription_id, "the receiver answered 410 Gone"
            )
        else:
            delay = (
                wait
                if wait is not None
                else next_delay(attempt, self.settings.webhook_retry_base_s)
            )
            next_at = now + timedelta(seconds=delay)
            give_up = next_at > row.retry_from + self.settings.webhook_horizon
            await connection.execute(
                this.values(
                    **outcome,
                    next_attempt_at=next_at,
                    claimed_until=now + self.lease if give_up else None,
                )
            )
        return give_up

    async def _give_up(self, row: Any, last: str) -> None:
        """The dead letter and the sender's notice first, then the delivery marked dead.

        In that order, so a crash in between gives the dead letter twice (the notice's
        id is derived from the event, so the sender sees it once), never not at all.
        A handoff request that never reached its receiver (`_stalls_handoff`) has the
        notice on the case log too, keyed by the case: there the escalation service
        takes it for a stalled handoff, and expires and escalates it at once.
        """
        event = parse_event(row.body.encode())
        origin = Origin(
            topics.inbox(row.agency),
            row.origin_partition,
            row.origin_offset,
            str(row.case_id).encode(),
            row.body.encode(),
        )
        reason = (
            f"webhook-undeliverable: {row.callback_url} did not take the event within "
            f"{self.settings.webhook_horizon} ({row.attempts + 1} attempts; last: {last})"
        )
        sender = emitter_of(event.source, self.registry)
        if isinstance(event, ZgwNotificatie):
            sender = event.data.afzender  # the gateway made it for this agency's ZGW system
        messages = refusal_messages(
            origin,
            event,
            sender=sender if sender not in (None, OPERATOR) else row.agency,
            code=UNDELIVERABLE,
            reason=reason,
            source=self.source,
            now=datetime.now(UTC),
            rejected_by="gateway",
        )
        notice = messages[-1]
        if sender in (None, OPERATOR):
            messages = messages[:1]  # the bus's own event: nobody to tell but the operators
        stalled = await self._stalls_handoff(row, event)
        if stalled:
            messages.append(replace(notice, topic=topics.CASES))
        await publish_all(self.broker, messages)
        t = webhook_deliveries.c
        async with write_transaction(self.engine) as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(t.id == row.id)
                .values(
                    status="dead",
                    finished_at=datetime.now(UTC),
                    next_attempt_at=None,
                    claimed_until=None,
                    attempts=row.attempts + 1,
                )
            )
        log.warning(
            "webhook delivery given up",
            case_id=str(row.case_id),
            event_id=str(row.event_id),
            subscription_id=str(row.subscription_id),
            reason_code=UNDELIVERABLE,
            stalled_handoff=stalled,
        )

    async def _stalls_handoff(self, row: Any, event: object) -> bool:
        """The event is a handoff request to this subscription's agency, and none of the
        agency's other subscriptions delivered it: the receiver never got the request."""
        if not isinstance(event, HandoffRequested) or event.data.to_agency != row.agency:
            return False
        t, s = webhook_deliveries.c, webhook_subscriptions.c
        delivered = (
            select(t.id)
            .join(webhook_subscriptions, s.subscription_id == t.subscription_id)
            .where(
                t.event_id == row.event_id,
                t.id != row.id,
                t.status == "delivered",
                s.agency == row.agency,
            )
            .limit(1)
        )
        async with self.engine.connect() as connection:
            return await connection.scalar(delivered) is None
