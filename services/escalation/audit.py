"""The audit records of what the escalation service puts in agencies' inboxes.

Like the router, the service writes one audit record per inbox delivery, in
the transaction that it commits after producing, and before it produces: an
alert to a team is a disclosure of the case (and of its hardship flag), an
expiry tells both parties of the handoff. Alerts and the bus's withdrawals of
them go under the case category's escalation grant, expiries under its handoff
grant. Notices about refused requests are the sender's own business and are
not audited, as with the router.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import topics
from contracts.audit import AuditEntry, AuditRecord, record_json
from contracts.registry import AgencyRegistry
from services.audit import append, new_chain
from services.escalation.levels import Context
from services.escalation.model import CaseFile
from services.runtime.kafka.clients import Outgoing

ESCALATION_EVENTS = ("escalation-raised", "escalation-resolved")
HANDOFF_EVENTS = ("handoff-expired",)

CHAIN = new_chain("escalation")
"""This process's audit chain: its own, so no other writer waits for it."""


def entries(
    outbox: Sequence[Outgoing],
    files: Mapping[UUID, CaseFile],
    registry: AgencyRegistry,
    now: datetime,
) -> list[AuditEntry]:
    """One entry per message in `outbox` that goes to an agency's inbox."""
    found: list[AuditEntry] = []
    for message in outbox:
        receiver = topics.agency_of_inbox(message.topic)
        if receiver is None:
            continue
        document = json.loads(message.value)
        name = str(document["type"]).removeprefix("nl.overheid.ketenzaken.")
        case_id = UUID(document["subject"])
        file = files.get(case_id)
        category = registry.category(file.state.category) if file is not None else None
        if category is None or name not in (*ESCALATION_EVENTS, *HANDOFF_EVENTS):
            continue
        if name in ESCALATION_EVENTS:
            purpose, basis = category.escalation_purpose, category.escalation_legal_basis
        else:
            purpose, basis = category.handoff_purpose, category.handoff_legal_basis
        flagged = bool(document["data"].get("flag"))
        found.append(
            AuditEntry(
                case_id=case_id,
                event_id=UUID(document["id"]),
                event_type=name,
                receiver=receiver,
                fields=["flags"] if flagged else [],
                purpose=purpose,
                legal_basis=basis,
                delivered_at=now,
            )
        )
    return found


async def audited(
    connection: AsyncConnection,
    outbox: Sequence[Outgoing],
    files: Mapping[UUID, CaseFile],
    ctx: Context,
) -> list[Outgoing]:
    """Append the outbox's audit records to the chain (in the caller's transaction, before
    anything is produced); the outbox with the records for `ketenbus.audit` added."""
    found = entries(outbox, files, ctx.registry, datetime.now(UTC))
    if not found:
        return list(outbox)
    records = await append(connection, found, chain=CHAIN)
    return [*outbox, *_records_out(records)]


async def audited_each(
    connection: AsyncConnection,
    outboxes: Sequence[Sequence[Outgoing]],
    files: Mapping[UUID, CaseFile],
    ctx: Context,
) -> list[list[Outgoing]]:
    """`audited` for several outboxes (a timer round's), with one append to the chain.

    One read of the head, one insert and one head update for the whole round,
    not three statements per outbox: the round holds the store's write lock
    while it produces, so every statement here delays the next claim.
    """
    now = datetime.now(UTC)
    found = [entries(outbox, files, ctx.registry, now) for outbox in outboxes]
    records = await append(connection, [entry for each in found for entry in each], chain=CHAIN)
    out: list[list[Outgoing]] = []
    start = 0
    for outbox, each in zip(outboxes, found, strict=True):
        mine = records[start : start + len(each)]
        start += len(each)
        out.append([*outbox, *_records_out(mine)])
    return out


def _records_out(records: Sequence[AuditRecord]) -> list[Outgoing]:
    return [Outgoing(topics.AUDIT, str(r.case_id).encode(), record_json(r)) for r in records]
