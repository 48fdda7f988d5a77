"""Audit entries for tests: plausible deliveries, distinct by case, receiver and minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from contracts.audit import AuditEntry

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def entry(
    case_id: UUID | None = None,
    *,
    receiver: str = "svb",
    minute: int = 0,
    event_type: str = "handoff-requested",
    fields: tuple[str, ...] = ("actions", "personal"),
) -> AuditEntry:
    return AuditEntry(
        case_id=case_id or uuid4(),
        event_id=uuid4(),
        event_type=event_type,
        receiver=receiver,
        fields=list(fields),
        purpose="Beoordeling van de overgedragen zaak",
        legal_basis="Participatiewet art. 64",
        delivered_at=T0 + timedelta(minutes=minute),
    )


def entries(count: int, case_id: UUID | None = None) -> list[AuditEntry]:
    return [entry(case_id, minute=minute) for minute in range(count)]
