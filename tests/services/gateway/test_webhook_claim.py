"""A delivery round's claim reads the pending deliveries through their own indexes, so a
backlog of them is not sorted whole every round (docs/gateway.md, "Delivery")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.dispatch import due_deliveries
from services.runtime.store.tables import webhook_deliveries

CASES = 40
PER_CASE = 5


async def _backlog(store: AsyncEngine, now: datetime) -> dict[uuid.UUID, int]:
    """PER_CASE pending deliveries for each of CASES cases and a few delivered ones; the
    id of each case's oldest pending one."""
    subscription = uuid.uuid4()
    cases = [uuid.uuid4() for _ in range(CASES)]
    rows: list[dict[str, Any]] = [
        {
            "subscription_id": subscription,
            "event_id": uuid.uuid4(),
            "case_id": cases[n % CASES],
            "event_type": "nl.overheid.ketenzaken.case-context-added",
            "body": "{}",
            "origin_partition": 0,
            "origin_offset": n,
            "status": "delivered" if n < CASES else "pending",
            "attempts": 0,
            "created_at": now,
            "retry_from": now,
            "next_attempt_at": None if n < CASES else now - timedelta(seconds=1),
        }
        for n in range(CASES * PER_CASE)
    ]
    async with store.begin() as connection:
        made = insert(webhook_deliveries).returning(
            webhook_deliveries.c.id, sort_by_parameter_order=True
        )
        ids = (await connection.execute(made, rows)).scalars()
        heads: dict[uuid.UUID, int] = {}
        for row, id_ in zip(rows, ids, strict=True):
            if row["status"] == "pending":
                heads.setdefault(row["case_id"], id_)
    return heads


async def _plan(store: AsyncEngine, now: datetime) -> str:
    """The plan the database makes of the claim's query as the driver is sent it."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        sent.append((args[2], args[3]))

    event.listen(store.sync_engine, "before_cursor_execute", capture)
    try:
        async with store.connect() as connection:
            await connection.execute(due_deliveries(now, 50))
    finally:
        event.remove(store.sync_engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    async with store.connect() as connection:
        if store.dialect.name == "sqlite":
            result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(row[-1]) for row in result)
        # A table this small would be read whole; what is asked is which index serves it.
        await connection.exec_driver_sql("SET enable_seqscan = off")
        result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(row[0]) for row in result)


async def test_a_round_claims_each_cases_oldest_pending_delivery_in_due_order(
    store: AsyncEngine,
) -> None:
    """Of a backlog with several pending deliveries per case, the claim takes each case's
    oldest pending one, in the order they fell due."""
    now = datetime.now(UTC)
    heads = await _backlog(store, now)

    async with store.connect() as connection:
        claimed = list((await connection.execute(due_deliveries(now, 50))).scalars())

    assert sorted(heads.values()) == claimed


async def test_the_claim_reads_the_due_pending_deliveries_through_their_index(
    store: AsyncEngine,
) -> None:
    """The claim's query uses the partial index of the pending deliveries in due order, not
    a sort of every delivery, on SQLite and PostgreSQL."""
    now = datetime.now(UTC)
    await _backlog(store, now)

    plan = await _plan(store, now)

    assert "ix_webhook_deliveries_due" in plan, plan
