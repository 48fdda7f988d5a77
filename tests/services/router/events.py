"""Events for the router's tests: the tracker's factory, plus context, tampering and messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from contracts import topics
from contracts.case import ActionTaken, CaseContext, CaseFlag, CitizenPromise, SealedPersonal
from contracts.envelope import CaseEvent
from services.router.routing import OutboxMessage
from tests._testutil import START

E = TypeVar("E", bound=CaseEvent[Any])

BSN = "123456782"
"""The citizen's BSN in the sealed personal sections: it must never show in clear."""

CITIZEN = "Petra de Vries"
"""The citizen's name, in personal sections only (the tracker's factory puts its own in texts)."""


def with_context(event: E, context: CaseContext) -> E:
    """`event` (case-opened, handoff-requested, ...) carrying `context`."""
    return event.model_copy(update={"data": event.data.model_copy(update={"context": context})})


def full_context(by: str, personal: SealedPersonal | None = None) -> CaseContext:
    """A context with every section but `personal` filled, and `personal` as given."""
    return CaseContext(
        actions=[ActionTaken(at=START, agency=by, description="Aanmaning verstuurd")],
        promises=[CitizenPromise(agency=by, promise="Geen beslag", due=START.date())],
        flags=[CaseFlag(kind="hardship", raised_by=by, note="Dreigende huisuitzetting")],
        personal=personal,
    )


def tampered(value: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The signed event `value` with `change` applied to its JSON, signature left as it was."""
    document = json.loads(value)
    change(document)
    return json.dumps(document).encode()


def outbox_message(
    agency: str, key: object, value: bytes, *, offset: int = 42, topic: str = ""
) -> OutboxMessage:
    """A record read from `agency`'s outbox (or `topic`), keyed by `key` as text."""
    encoded = key if isinstance(key, bytes) else str(key).encode() if key is not None else None
    return OutboxMessage(topic or topics.outbox(agency), 0, offset, encoded, value)
