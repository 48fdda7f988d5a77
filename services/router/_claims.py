"""What a refused message says of itself, read without trusting it, for the sender's notice.

A message refused before its signature is verified (a bad signature, a foreign
key, a record whose headers are not text) still names its event: the id,
type and case in its JSON are what the sender needs to find what was refused.
They are taken only in the shapes the envelope allows (UUIDs, a type name),
so nothing else of an unverified message reaches a notice or a log, and the
notice says they are unverified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from contracts.envelope import MAX_EVENT_BYTES, CaseEvent
from contracts.parse import read_json
from contracts.screening import nesting_exceeds

_TYPE = re.compile(r"[a-z0-9][a-z0-9.-]{0,119}")


@dataclass(frozen=True, slots=True)
class Claim:
    """The refused event's id, type, case and chain, as far as they could be read."""

    event_id: UUID | None = None
    event_type: str | None = None
    case_id: UUID | None = None
    correlation_id: UUID | None = None
    verified: bool = False
    """Whether these come from bytes whose signature verified (else: what they claim)."""

    @classmethod
    def of(cls, document: dict[str, Any], *, verified: bool = False) -> Claim:
        """What the JSON object `document` says its event is."""
        kind = document.get("type")
        return cls(
            event_id=_uuid(document.get("id")),
            event_type=kind if isinstance(kind, str) and _TYPE.fullmatch(kind) else None,
            case_id=_uuid(document.get("subject")),
            correlation_id=_uuid(document.get("correlationid")),
            verified=verified,
        )

    @classmethod
    def of_event(cls, event: CaseEvent[Any]) -> Claim:
        """A verified, valid event's own id, type, case and chain."""
        return cls(event.id, event.type, event.subject, event.correlationid, verified=True)


def claim_of(value: bytes | None) -> Claim:
    """What the bytes `value` say their event is; nothing when they are no readable object."""
    if not value or len(value) > 16 * MAX_EVENT_BYTES or nesting_exceeds(value):
        return Claim()
    try:
        document = read_json(value)
    except ValueError:
        return Claim()
    return Claim.of(document) if isinstance(document, dict) else Claim()


def _uuid(value: object) -> UUID | None:
    if not isinstance(value, str) or len(value) > 45:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
