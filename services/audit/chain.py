"""Append to a writer's audit chain inside the caller's transaction; verify; trace a case.

Each writer process keeps a chain of its own (`new_chain`), so routers,
escalation services and gateways never wait on each other's chains; a chain is
opened once, in the chain of openings, whose one head row is locked only then.
`append` costs three statements whatever the batch size: lock and read the
chain's head, insert the linked records (one executemany,
`services.runtime.store.bulk`), move the head. `verify` reads the openings and
each chain in pages of `PAGE` records within one snapshot, so a long chain
never sits in memory whole and appends running meanwhile do not show up as a
broken chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    BreakKind,
    Broken,
    check_chain,
    link,
    opening_hash,
)
from services.runtime.store.bulk import insert_rows
from services.runtime.store.tables import audit_chain_head, audit_chains, audit_records

PAGE = 5_000
"""Records read per query by `verify`."""

_HEAD = 1
"""The id of the openings' head's one row."""


class HeadMoved(RuntimeError):
    """A head moved under an append that held its lock: the store is not serialising writers."""


def new_chain(writer: str) -> str:
    """A fresh chain name for one process of `writer` (`router`, `escalation`, `gateway`)."""
    return f"{writer}/{uuid.uuid4()}"


async def append(
    connection: AsyncConnection, entries: Sequence[AuditEntry], *, chain: str
) -> list[AuditRecord]:
    """Link `entries` to the end of `chain`, in order, in the caller's open transaction.

    Returns the records as written, for the caller to publish. The caller
    commits; if it rolls back, or this raises, nothing was appended (a chain it
    opened is not opened either). On SQLite the caller's transaction must be a
    writer from its start (`services.runtime.store.engine.write_transaction`),
    so that no other writer can move a head between this read and this write;
    on PostgreSQL the chain's row is locked here until the caller's transaction
    ends. Only the writer of `chain` appends to it, so nobody else waits for it.
    """
    if not entries:
        return []
    head = await _head(connection, chain) or await _open(connection, chain)
    records: list[AuditRecord] = []
    seq, previous = head.seq, head.hash
    for entry in entries:
        seq += 1
        records.append(link(seq, previous, entry, chain))
        previous = records[-1].hash
    await insert_rows(connection, audit_records, _COLUMNS, [_row(record) for record in records])
    # Conditional on the head read above: should two appends ever interleave
    # anyway (a SQLite transaction begun as a reader), the second fails here,
    # or on the primary key above, rather than forking the chain.
    moved = await connection.execute(
        update(audit_chains)
        .where(
            audit_chains.c.chain == chain,
            audit_chains.c.seq == head.seq,
            audit_chains.c.hash == head.hash,
        )
        .values(seq=seq, hash=previous)
    )
    if moved.rowcount != 1:
        raise HeadMoved(f"the head of audit chain {chain} moved during an append at {head.seq}")
    return records


async def _head(connection: AsyncConnection, chain: str) -> Any:
    """The chain's head row (seq, hash), locked; None: not opened."""
    return (
        await connection.execute(
            select(audit_chains.c.seq, audit_chains.c.hash)
            .where(audit_chains.c.chain == chain)
            .with_for_update()  # rendered on PostgreSQL; SQLite has no row locks
        )
    ).first()


async def _open(connection: AsyncConnection, chain: str) -> Any:
    """Open `chain` as the next of the openings; its head (nothing yet)."""
    openings = (
        await connection.execute(
            select(audit_chain_head.c.seq, audit_chain_head.c.hash)
            .where(audit_chain_head.c.id == _HEAD)
            .with_for_update()
        )
    ).one()
    # Another transaction may have opened it while this one waited for the lock.
    if (found := await _head(connection, chain)) is not None:
        return found
    seq = openings.seq + 1
    opened = opening_hash(seq, openings.hash, chain)
    await connection.execute(
        insert(audit_chains).values(
            chain=chain,
            opened_seq=seq,
            opening_prev_hash=openings.hash,
            opening_hash=opened,
            opened_at=datetime.now(UTC),
            seq=0,
            hash=GENESIS_HASH,
        )
    )
    moved = await connection.execute(
        update(audit_chain_head)
        .where(
            audit_chain_head.c.id == _HEAD,
            audit_chain_head.c.seq == openings.seq,
            audit_chain_head.c.hash == openings.hash,
        )
        .values(seq=seq, hash=opened)
    )
    if moved.rowcount != 1:
        raise HeadMoved(f"the head of the audit chains' openings moved at opening {seq}")
    head = await _head(connection, chain)
    assert head is not None
    return head


_COLUMNS = (
    "chain",
    "seq",
    "case_id",
    "event_id",
    "event_type",
    "receiver",
    "fields",
    "purpose",
    "legal_basis",
    "delivered_at",
    "prev_hash",
    "hash",
)


def _row(record: AuditRecord) -> tuple[object, ...]:
    return (
        record.chain,
        record.seq,
        record.case_id,
        record.event_id,
        record.event_type,
        record.receiver,
        record.fields,
        record.purpose,
        record.legal_basis,
        record.delivered_at,
        record.prev_hash,
        record.hash,
    )


class ChainReport(BaseModel):
    """What `verify` found: how much of the trail holds, where it first breaks, the heads."""

    model_config = ConfigDict(frozen=True)

    intact: bool = Field(
        description="Every opening and record holds, and every head names its last one."
    )
    records: int = Field(description="Records found intact, on every chain, before any break.")
    chains: int = Field(default=0, description="Chains opened, as the openings say.")
    broken: Broken | None = Field(description="The first break; None: the trail is intact.")
    head_seq: int | None = Field(
        description="The chains opened, as the openings' head says; None: no head."
    )
    head_hash: str | None = Field(description="The last opening's hash, as that head says.")


async def verify(engine: AsyncEngine, *, page: int = PAGE) -> ChainReport:
    """Check the openings against their head, then each chain's records and its head."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for the heads and every page: appends committed while
            # the pages are read are neither half seen nor mistaken for tampering.
            await connection.execution_options(isolation_level="REPEATABLE READ")
        # SQLite (WAL): a read transaction sees one snapshot from its first read.
        async with connection.begin():
            head = (
                await connection.execute(
                    select(audit_chain_head.c.seq, audit_chain_head.c.hash).where(
                        audit_chain_head.c.id == _HEAD
                    )
                )
            ).first()
            head_seq = None if head is None else int(head.seq)
            head_hash = None if head is None else str(head.hash)
            chains = (
                await connection.execute(select(audit_chains).order_by(audit_chains.c.opened_seq))
            ).all()
            broken = _openings_broken(chains, head_seq, head_hash)
            good = 0
            if broken is None:
                broken = await _unopened(connection, [c.chain for c in chains])
            for chain in chains if broken is None else []:
                count, broken, last = await _walk(connection, chain.chain, int(chain.seq), page)
                if broken is None:
                    count, broken = _against_head(last, chain.chain, int(chain.seq), chain.hash)
                good += count
                if broken is not None:
                    break
    return ChainReport(
        intact=broken is None,
        records=good,
        chains=len(chains),
        broken=broken,
        head_seq=head_seq,
        head_hash=head_hash,
    )


def _openings_broken(
    chains: Sequence[Row[Any]], head_seq: int | None, head_hash: str | None
) -> Broken | None:
    """The first opening that does not hold, or that the openings' head does not name."""
    expected, previous = 1, GENESIS_HASH
    for chain in chains:
        problem: tuple[BreakKind, str] | None = None
        if chain.opened_seq != expected:
            problem = (
                "gap",
                f"chain {chain.chain} is opening {chain.opened_seq}, not {expected}: "
                "a chain's opening was removed",
            )
        elif opening_hash(expected, chain.opening_prev_hash, chain.chain) != chain.opening_hash:
            problem = ("contents-changed", f"the opening of chain {chain.chain} changed")
        elif chain.opening_prev_hash != previous:
            problem = ("not-linked", f"the opening of chain {chain.chain} follows no opening")
        if problem is not None:
            return Broken(seq=expected, kind=problem[0], reason=problem[1])
        expected, previous = expected + 1, chain.opening_hash
    return _against_openings_head(expected - 1, previous, head_seq, head_hash)


def _against_openings_head(
    opened: int, last_hash: str, head_seq: int | None, head_hash: str | None
) -> Broken | None:
    if head_seq is None:
        return Broken(seq=opened, kind="head-mismatch", reason="the openings' head is missing")
    if head_seq > opened:
        reason = (
            f"the openings' head counts {head_seq} chains, {head_seq - opened} more than are "
            "there: a chain was removed whole, with its head and records"
        )
        return Broken(seq=opened + 1, kind="missing-at-end", reason=reason)
    if head_seq < opened or head_hash != last_hash:
        reason = "the openings' head names another opening: the head or a chain was rewritten"
        return Broken(seq=opened, kind="head-mismatch", reason=reason)
    return None


async def _unopened(connection: AsyncConnection, opened: list[str]) -> Broken | None:
    """Records on a chain that was never opened: not appended by the bus."""
    query = select(audit_records.c.chain, audit_records.c.seq).where(
        audit_records.c.chain.not_in(opened)
    )
    found = (await connection.execute(query.limit(1))).first()
    if found is None:
        return None
    reason = f"on chain {found.chain}, which was never opened: not appended by the bus"
    return Broken(seq=int(found.seq), kind="beyond-head", reason=reason, chain=found.chain)


async def _walk(
    connection: AsyncConnection, chain: str, head_seq: int, page: int
) -> tuple[int, Broken | None, AuditRecord | None]:
    """Check a chain's records page by page: how many hold, the first break, the last read."""
    last: AuditRecord | None = None
    while True:
        after = 0 if last is None else last.seq
        rows = (
            await connection.execute(
                select(audit_records)
                .where(audit_records.c.chain == chain, audit_records.c.seq > after)
                .order_by(audit_records.c.seq)
                .limit(page)
            )
        ).all()
        if not rows:
            return after, None, last
        records, invalid = _records(rows)
        start = GENESIS_HASH if last is None else last.hash
        broken = check_chain(records, start_hash=start, start_seq=after + 1)
        if broken is not None:
            broken = broken.model_copy(update={"chain": chain})
        if broken is None and invalid is not None:
            broken = Broken(
                seq=invalid.seq,
                kind="contents-changed",
                reason="contents changed since it was written: it is no longer a valid record",
                case_id=_uuid_or_none(invalid.case_id),
                event_id=_uuid_or_none(invalid.event_id),
                chain=chain,
            )
        if broken is not None:
            intact = [record for record in records if record.seq < broken.seq]
            return (intact[-1].seq if intact else after), broken, None
        last = records[-1]
        if last.seq > head_seq:
            beyond = next(record for record in records if record.seq > head_seq)
            reason = f"written past the chain's head (record {head_seq}), not appended by the bus"
            return head_seq, _at(beyond, "beyond-head", reason), None


def _against_head(
    last: AuditRecord | None, chain: str, head_seq: int, head_hash: str
) -> tuple[int, Broken | None]:
    """Whether the chain's head names its last record (an intact chain cut short does not)."""
    last_seq = 0 if last is None else last.seq
    last_hash = GENESIS_HASH if last is None else last.hash
    if head_seq > last_seq:
        gone = (
            f"record {head_seq} was"
            if head_seq == last_seq + 1
            else f"records {last_seq + 1}-{head_seq} were"
        )
        reason = f"missing: the chain's head is at record {head_seq}, so {gone} removed"
        return last_seq, Broken(seq=last_seq + 1, kind="missing-at-end", reason=reason, chain=chain)
    if head_hash != last_hash:
        reason = "the chain's head names another hash for it: the head or this record was rewritten"
        if last is None:
            return 0, Broken(seq=0, kind="head-mismatch", reason=reason, chain=chain)
        return last_seq - 1, _at(last, "head-mismatch", reason)
    return last_seq, None


def _at(record: AuditRecord, kind: BreakKind, reason: str) -> Broken:
    return Broken(
        seq=record.seq,
        kind=kind,
        reason=reason,
        case_id=record.case_id,
        event_id=record.event_id,
        chain=record.chain,
    )


def _records(rows: Sequence[Row[Any]]) -> tuple[list[AuditRecord], Row[Any] | None]:
    """The rows as records, up to the first that no longer is one (returned beside)."""
    records: list[AuditRecord] = []
    for row in rows:
        try:
            records.append(AuditRecord.model_validate(row._asdict()))
        except ValidationError:
            return records, row
    return records, None


def _uuid_or_none(value: object) -> UUID | None:
    return value if isinstance(value, UUID) else None


async def trace(engine: AsyncEngine, case_id: UUID) -> list[AuditRecord]:
    """Every delivery of `case_id`'s events, oldest first (by time, then place in its chain)."""
    query = (
        select(audit_records)
        .where(audit_records.c.case_id == case_id)
        .order_by(audit_records.c.delivered_at, audit_records.c.chain, audit_records.c.seq)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [AuditRecord.model_validate(row._asdict()) for row in rows]
