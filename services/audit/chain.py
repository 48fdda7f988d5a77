"""Append to the audit chain inside the caller's transaction; verify it; trace one case.

`append` costs three statements whatever the batch size: lock and read the
head, insert the linked records (one executemany, `services.runtime.store.bulk`),
move the head. `verify` reads the chain in pages of `PAGE` records within one
snapshot, so a long chain never sits in memory whole and appends running
meanwhile do not show up as a broken chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    BreakKind,
    Broken,
    check_chain,
    link,
)
from services.runtime.store.bulk import insert_rows
from services.runtime.store.tables import audit_chain_head, audit_records

PAGE = 5_000
"""Records read per query by `verify`."""

_HEAD = 1
"""The id of the head's one row."""


class HeadMoved(RuntimeError):
    """The head moved under an append that held its lock: the store is not serialising writers."""


async def append(connection: AsyncConnection, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
    """Link `entries` to the end of the chain, in order, in the caller's open transaction.

    Returns the records as written, for the caller to publish. The caller
    commits; if it rolls back, or this raises, nothing was appended. On SQLite
    the caller's transaction must be a writer from its start
    (`services.runtime.store.engine.write_transaction`), so that no other writer can
    move the head between this read and this write; on PostgreSQL the head row
    is locked here until the caller's transaction ends.
    """
    if not entries:
        return []
    head = (
        await connection.execute(
            select(audit_chain_head.c.seq, audit_chain_head.c.hash)
            .where(audit_chain_head.c.id == _HEAD)
            .with_for_update()  # rendered on PostgreSQL; SQLite has no row locks
        )
    ).one()
    records: list[AuditRecord] = []
    seq, previous = head.seq, head.hash
    for entry in entries:
        seq += 1
        records.append(link(seq, previous, entry))
        previous = records[-1].hash
    await insert_rows(connection, audit_records, _COLUMNS, [_row(record) for record in records])
    # Conditional on the head read above: should two appends ever interleave
    # anyway (a SQLite transaction begun as a reader), the second fails here,
    # or on the primary key above, rather than forking the chain.
    moved = await connection.execute(
        update(audit_chain_head)
        .where(
            audit_chain_head.c.id == _HEAD,
            audit_chain_head.c.seq == head.seq,
            audit_chain_head.c.hash == head.hash,
        )
        .values(seq=seq, hash=previous)
    )
    if moved.rowcount != 1:
        raise HeadMoved(f"the audit chain's head moved during an append at record {head.seq}")
    return records


_COLUMNS = (
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
    """What `verify` found: how much of the chain holds, where it first breaks, the head."""

    model_config = ConfigDict(frozen=True)

    intact: bool = Field(description="Every record holds and the head names the last one.")
    records: int = Field(description="Records found intact, from the first, before any break.")
    broken: Broken | None = Field(description="The first break; None: the chain is intact.")
    head_seq: int | None = Field(description="The last record the head names; None: no head.")
    head_hash: str | None = Field(description="The hash the head names.")


async def verify(engine: AsyncEngine, *, page: int = PAGE) -> ChainReport:
    """Check every record's hash and link, and the head against the last record."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for the head and every page: appends committed while
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
            good, broken, last = await _walk(connection, head_seq, page)
    if broken is None:
        good, broken = _against_head(last, head_seq, head_hash)
    return ChainReport(
        intact=broken is None,
        records=good,
        broken=broken,
        head_seq=head_seq,
        head_hash=head_hash,
    )


async def _walk(
    connection: AsyncConnection, head_seq: int | None, page: int
) -> tuple[int, Broken | None, AuditRecord | None]:
    """Check the records page by page: how many hold, the first break, the last record read."""
    last: AuditRecord | None = None
    while True:
        after = 0 if last is None else last.seq
        rows = (
            await connection.execute(
                select(audit_records)
                .where(audit_records.c.seq > after)
                .order_by(audit_records.c.seq)
                .limit(page)
            )
        ).all()
        if not rows:
            return after, None, last
        records, invalid = _records(rows)
        start = GENESIS_HASH if last is None else last.hash
        broken = check_chain(records, start_hash=start, start_seq=after + 1)
        if broken is None and invalid is not None:
            broken = Broken(
                seq=invalid.seq,
                kind="contents-changed",
                reason="contents changed since it was written: it is no longer a valid record",
                case_id=_uuid_or_none(invalid.case_id),
                event_id=_uuid_or_none(invalid.event_id),
            )
        if broken is not None:
            intact = [record for record in records if record.seq < broken.seq]
            return (intact[-1].seq if intact else after), broken, None
        last = records[-1]
        if head_seq is not None and last.seq > head_seq:
            beyond = next(record for record in records if record.seq > head_seq)
            reason = f"written past the chain's head (record {head_seq}), not appended by the bus"
            return head_seq, _at(beyond, "beyond-head", reason), None


def _against_head(
    last: AuditRecord | None, head_seq: int | None, head_hash: str | None
) -> tuple[int, Broken | None]:
    """Whether the head names the last record (an intact chain cut short does not)."""
    last_seq = 0 if last is None else last.seq
    last_hash = GENESIS_HASH if last is None else last.hash
    if head_seq is None:
        return last_seq, Broken(seq=last_seq, kind="head-mismatch", reason="the head is missing")
    if head_seq > last_seq:
        gone = (
            f"record {head_seq} was"
            if head_seq == last_seq + 1
            else f"records {last_seq + 1}-{head_seq} were"
        )
        reason = f"missing: the chain's head is at record {head_seq}, so {gone} removed"
        return last_seq, Broken(seq=last_seq + 1, kind="missing-at-end", reason=reason)
    if head_hash != last_hash:
        reason = "the chain's head names another hash for it: the head or this record was rewritten"
        if last is None:
            return 0, Broken(seq=0, kind="head-mismatch", reason=reason)
        return last_seq - 1, _at(last, "head-mismatch", reason)
    return last_seq, None


def _at(record: AuditRecord, kind: BreakKind, reason: str) -> Broken:
    return Broken(
        seq=record.seq, kind=kind, reason=reason, case_id=record.case_id, event_id=record.event_id
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
    """Every delivery of `case_id`'s events, oldest first (by place in the chain)."""
    query = (
        select(audit_records)
        .where(audit_records.c.case_id == case_id)
        .order_by(audit_records.c.seq)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [AuditRecord.model_validate(row._asdict()) for row in rows]
