"""The ledger's statements on PostgreSQL: arrays in, COPY and executemany out.

Same effects as the portable statements in `ledger` (SQLAlchemy Core, used on
SQLite), in fewer and cheaper round trips, whatever the batch size:

- the batch's ids travel as one `uuid[]` parameter, joined with `unnest`, so
  the statement text (and its prepared plan) is the same for every batch and
  the planner can use the key's index. An `IN ($1, ..., $500)` list is cached
  as a generic plan that compares every row with every parameter: on a young,
  unanalysed timeline that made skipping a batch of duplicates cost 200 ms;
- the timeline rows go in with COPY (binary), in the order given, so `id`
  still numbers them in the order the tracker met them;
- new cases are inserted and changed ones updated with asyncpg's executemany,
  a single pipelined round trip each.

The reads go through SQLAlchemy, which begins the transaction on the asyncpg
connection; the writes use that connection directly, after checking that the
transaction is open, so they commit or roll back with the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.custody.state_rows import STATE_COLUMNS
from services.runtime.store.tables import case_timeline, cases

_SEEN = text(
    "SELECT t.event_id FROM case_timeline AS t"
    " WHERE t.event_id IN (SELECT unnest(CAST(:ids AS uuid[])))"
).columns(case_timeline.c.event_id)

TIMELINE_COLUMNS = (
    "event_id",
    "case_id",
    "time",
    "event_type",
    "agency",
    "sequence",
    "summary",
    "applied",
    "refusal",
    "handoff_id",
    "escalation_id",
    "escalation_level",
    "escalation_trigger",
    "escalation_outcome",
    "rule_reference",
    "agency_pair",
)
"""The timeline columns the tracker writes (`id` numbers itself), in `timeline_row` order."""

CASE_COLUMNS = (*STATE_COLUMNS, "updated_at")
"""The `cases` columns, in `case_row` order."""

# The columns named, in the order `.columns` gives their types (matched by position).
_LOCK_CASES = text(
    f"SELECT {', '.join(f'c.{name}' for name in CASE_COLUMNS)} FROM cases AS c"  # noqa: S608
    " WHERE c.case_id IN (SELECT unnest(CAST(:ids AS uuid[])))"
    # In key order, so two writers lock rows in the same order (no deadlock).
    " ORDER BY c.case_id FOR UPDATE OF c"
).columns(*(cases.c[name] for name in CASE_COLUMNS))

# Built from the constant column names above, never from input.
_INSERT_CASE = (
    f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(CASE_COLUMNS) + 1))})"
)
_UPDATE_CASE = (
    "UPDATE cases SET "  # noqa: S608
    + ", ".join(f"{name} = ${n}" for n, name in enumerate(CASE_COLUMNS[1:], start=2))
    + " WHERE case_id = $1"
)


async def load_cases(connection: AsyncConnection, case_ids: set[UUID]) -> list[Any]:
    """The `cases` rows of `case_ids` that exist, locked for this transaction, in key order."""
    return list(await connection.execute(_LOCK_CASES, {"ids": sorted(case_ids)}))


async def seen_ids(connection: AsyncConnection, event_ids: list[UUID]) -> set[UUID]:
    """Those of `event_ids` already on the timeline."""
    return set(await connection.scalars(_SEEN, {"ids": event_ids}))


_UNIQUE_VIOLATION = "23505"
"""PostgreSQL's SQLSTATE for a duplicate key (asyncpg's UniqueViolationError)."""


async def write(
    connection: AsyncConnection,
    timeline: Sequence[tuple[Any, ...]],
    new: Sequence[tuple[Any, ...]],
    updated: Sequence[tuple[Any, ...]],
) -> None:
    """COPY the timeline rows, insert the `new` cases, update the `updated` ones."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if not driver.is_in_transaction():
        # The reads begin it; writing outside it would commit ahead of the batch.
        raise RuntimeError("the ledger writes only inside the batch's transaction")
    try:
        if timeline:
            await driver.copy_records_to_table(
                case_timeline.name, records=timeline, columns=TIMELINE_COLUMNS
            )
        if new:
            await driver.executemany(_INSERT_CASE, new)
        if updated:
            await driver.executemany(_UPDATE_CASE, updated)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        # Another writer recorded the same event or opened the same case first: the
        # batch fails whole, as through SQLAlchemy, and its replay skips what is there.
        raise IntegrityError("ledger write", None, exc) from exc
