"""Case custody: who holds each case, which handoff is pending, who has held it.

The router checks holder rights against it before an event reaches the case
log, and the escalation service ends a pending handoff in it when it expires
one. Both lock the case's row (`FOR UPDATE`, in key order) and keep the lock
while they produce, so whoever comes second sees what the first put on the
log: the rights checked here and the order of the case log always agree, and
the tracker, which follows the log, never meets an event the router let
through on a state the log does not have.

Built on `contracts` and `services.runtime` only: the router and the
escalation service both use it, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.handoff import CaseState, PendingHandoff
from services.custody.state_rows import STATE_COLUMNS, state_of, state_values
from services.runtime.store.bulk import insert_rows, update_rows
from services.runtime.store.chunks import chunks
from services.runtime.store.tables import case_custody


@dataclass(slots=True)
class Custody:
    """One case as the router sees it: the state machine's state and every holder so far."""

    state: CaseState
    holders: list[str] = field(default_factory=list)

    @property
    def case_id(self) -> UUID:
        return self.state.case_id


@dataclass(slots=True)
class Ledger:
    """The custody of the cases one unit of work touches, and which of them it changed."""

    cases: dict[UUID, Custody]
    existing: set[UUID] = field(default_factory=set)
    changed: set[UUID] = field(default_factory=set)

    def put(self, custody: Custody) -> None:
        self.cases[custody.case_id] = custody
        self.changed.add(custody.case_id)


async def load(connection: AsyncConnection, case_ids: Iterable[UUID]) -> Ledger:
    """Lock and read the custody rows of `case_ids` (PostgreSQL: `FOR UPDATE`, key order)."""
    found: dict[UUID, Custody] = {}
    for chunk in chunks(sorted(set(case_ids))):
        query = (
            select(case_custody)
            .where(case_custody.c.case_id.in_(chunk))
            .order_by(case_custody.c.case_id)
            .with_for_update()
        )
        for row in await connection.execute(query):
            found[row.case_id] = _custody_of(row)
    return Ledger(found, set(found))


async def save(connection: AsyncConnection, ledger: Ledger) -> None:
    """Write the changed custody rows: one INSERT and one UPDATE statement at most."""
    rows = [_row(ledger.cases[key]) for key in sorted(ledger.changed)]
    new = [row for row in rows if row[0] not in ledger.existing]
    # The key goes last, for the WHERE of the update.
    old = [(*row[1:], row[0]) for row in rows if row[0] in ledger.existing]
    await insert_rows(connection, case_custody, _COLUMNS, new)
    await update_rows(connection, case_custody, _COLUMNS[1:], "case_id", old)


@dataclass(slots=True)
class Expiry:
    """The outcome of `end_handoffs`: which handoffs it ended, and which were answered."""

    ended: dict[tuple[UUID, UUID], PendingHandoff] = field(default_factory=dict)
    answered: set[tuple[UUID, UUID]] = field(default_factory=set)
    """Pending no more (answered, or the case closed): their expiry must not go out."""


async def end_handoffs(
    connection: AsyncConnection, expiring: Sequence[tuple[UUID, UUID]]
) -> Expiry:
    """End the pending handoffs `(case_id, handoff_id)` that are still pending.

    The escalation service calls this in a transaction it keeps open while it
    produces the expiries, so the router cannot let an answer through between
    the check and the expiry reaching the log. A case with no custody row was
    never routed through this store (a case log written by other means): its
    expiry is neither blocked nor recorded here.
    """
    ledger = await load(connection, (case_id for case_id, _ in expiring))
    outcome = Expiry()
    for case_id, handoff_id in expiring:
        custody = ledger.cases.get(case_id)
        if custody is None:
            continue
        pending = custody.state.pending
        if custody.state.status != "open" or pending is None or pending.handoff_id != handoff_id:
            outcome.answered.add((case_id, handoff_id))
            continue
        custody.state = replace(custody.state, pending=None)
        ledger.put(custody)
        outcome.ended[(case_id, handoff_id)] = pending
    await save(connection, ledger)
    return outcome


async def restore_handoffs(
    connection: AsyncConnection, ended: dict[tuple[UUID, UUID], PendingHandoff]
) -> None:
    """Put back handoffs `end_handoffs` ended whose expiry could not be produced after all."""
    if not ended:
        return
    ledger = await load(connection, (case_id for case_id, _ in ended))
    for (case_id, _), pending in ended.items():
        custody = ledger.cases[case_id]
        custody.state = replace(custody.state, pending=pending)
        ledger.put(custody)
    await save(connection, ledger)


def _custody_of(row: Any) -> Custody:
    return Custody(state_of(row), list(row.holders))


_COLUMNS = (*STATE_COLUMNS, "holders")
"""The custody row: the tracker's state columns and every holder so far."""


def _row(custody: Custody) -> tuple[Any, ...]:
    """The custody row's values, in `_COLUMNS` order."""
    return (*state_values(custody.state), list(custody.holders))
