"""Webhook rows as the gateway writes them, made straight in a store: subscriptions with
their credentials, deliveries in any status, and their attempts.

    sub = await add_subscription(engine)                       # active, with AUTHORIZATION
    sent = await add_delivery(engine, sub, "dead", tries=[(T0, 503), (T0 + minute, None)])
    rows = await delivery_rows(engine)                         # id -> the row, to compare
    a, b = await story(engine), await story(engine)            # two subscriptions' stories
    chosen, pending = scopes(a, b)["range"]                    # replay's options, its effect

A try is `(at, status)`: 2xx is an answer taken, another status a refusal (`HTTP n`),
None no answer at all (`ConnectError: ...`), as `services.gateway.dispatch` records them.
The credentials and the body carry marks (`SECRETS`) a test can look for in what is shown.

(Not the receiver that deliveries are POSTed to: that is `webhook_receiver`.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
"""When the rows' story starts: the first delivery is made then."""
AUTHORIZATION = "Bearer receiver-credential-never-shown"
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtbmV2ZXItc2hvd24"
QUERY_CREDENTIAL = "query-credential-never-shown"
CALLBACK = f"https://hooks.example.org/ketenbus?code={QUERY_CREDENTIAL}"
BODY_MARK = "body-never-shown"
SECRETS = (AUTHORIZATION, "receiver-credential", SIGNING_SECRET, QUERY_CREDENTIAL, BODY_MARK)
"""What no operator page or answer may show."""

Try = tuple[datetime, int | None]
_MINUTE = timedelta(minutes=1)


async def add_subscription(
    engine: AsyncEngine,
    *,
    agency: str = "gm0363",
    status: str = "active",
    callback: str = CALLBACK,
    created_at: datetime = T0,
) -> UUID:
    """A subscription with an Authorization value and a signing secret; its id."""
    made = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            insert(webhook_subscriptions).values(
                subscription_id=made,
                agency=agency,
                callback_url=callback,
                authorization=AUTHORIZATION,
                signing_secret=SIGNING_SECRET,
                event_types=[],
                purpose="tests",
                legal_basis="tests",
                status=status,
                created_at=created_at,
                ended_at=None if status == "active" else created_at,
                end_reason=None if status == "active" else "ended by an operator",
            )
        )
    return made


def _error(status: int | None) -> str | None:
    if status is None:
        return "ConnectError: connection refused"
    return None if 200 <= status < 300 else f"HTTP {status}"


async def add_delivery(
    engine: AsyncEngine,
    subscription_id: UUID,
    status: str,
    *,
    made: datetime = T0,
    tries: Sequence[Try] = (),
    retry_from: datetime | None = None,
) -> int:
    """A delivery in `status`, made at `made`, with an attempt per try; its id.

    `retry_from`: when its retry horizon began (default `made`; a replayed one's is later).
    """
    last = tries[-1] if tries else None
    async with engine.begin() as connection:
        done = await connection.execute(
            insert(webhook_deliveries).values(
                subscription_id=subscription_id,
                event_id=uuid.uuid4(),
                case_id=uuid.uuid4(),
                event_type="handoff-requested",
                body=json.dumps({"data": {"note": BODY_MARK}}),
                origin_partition=0,
                origin_offset=0,
                status=status,
                attempts=len(tries),
                created_at=made,
                retry_from=retry_from or made,
                next_attempt_at=made if status == "pending" else None,
                claimed_until=None,
                last_status=last[1] if last else None,
                last_error=_error(last[1]) if last else None,
                finished_at=None if status == "pending" else (last[0] if last else made),
            )
        )
        delivery_id = int(done.inserted_primary_key[0])
        for number, (at, answer) in enumerate(tries, start=1):
            await connection.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery_id,
                    attempt=number,
                    at=at,
                    status=answer,
                    error=_error(answer),
                    duration_ms=12,
                )
            )
    return delivery_id


async def delivery_rows(engine: AsyncEngine) -> dict[int, Any]:
    """Every delivery row by id: its status, timers and tries as the store has them."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(webhook_deliveries))
        return {row.id: row for row in rows}


@dataclass(frozen=True)
class Story:
    """A subscription's deliveries: delivered at T0; given up (dead), pending and dropped,
    made at T0+1h; delivered, made at T0+2h."""

    sub: UUID
    delivered: int
    dead: int
    pending: int
    dropped: int
    later: int


async def story(store: AsyncEngine, status: str = "active") -> Story:
    hour = timedelta(hours=1)
    sub = await add_subscription(store, status=status)
    return Story(
        sub=sub,
        delivered=await add_delivery(store, sub, "delivered", tries=[(T0, 200)]),
        dead=await add_delivery(store, sub, "dead", made=T0 + hour, tries=[(T0 + hour, 500)]),
        pending=await add_delivery(store, sub, "pending", made=T0 + hour),
        dropped=await add_delivery(store, sub, "dropped", made=T0 + hour),
        later=await add_delivery(store, sub, "delivered", made=T0 + 2 * hour),
    )


def scopes(a: Story, b: Story) -> dict[str, tuple[dict[str, Any], set[int]]]:
    """Per scope: what `replay` is asked (the CLI's options), and what it makes pending of
    the stories of two active subscriptions `a` and `b` (and an ended one's)."""
    return {
        "delivery": ({"delivery_id": a.dead}, {a.dead}),
        "subscription": ({"subscription_id": a.sub}, {a.delivered, a.dead, a.later}),
        "range": ({"since": T0 + 30 * _MINUTE, "until": T0 + 90 * _MINUTE}, {a.dead, b.dead}),
    }
