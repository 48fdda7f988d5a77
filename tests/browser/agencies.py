"""What agency systems do to the bus in the browser tests: open a case, ask for an escalation,
send something the router must refuse. Signed with the test keys, as an agency signs its own.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from contracts.agency_client import AgencyKeys
from contracts.envelope import CaseEvent, source_urn
from contracts.events import CaseOpened, CaseOpening, EscalationRequest, EscalationRequested
from contracts.registry import AgencyRegistry
from contracts.topics import outbox
from tests._testutil import produce, raw_event

HOLDER = "gm0363"
"""The agency that opens the tests' cases; level 1 of their path is one of its teams."""
CATEGORY = "schulden"


class Agencies:
    """The tests' agency systems on one bus: each event signed by its emitter's test key."""

    def __init__(
        self, bootstrap: str, registry: AgencyRegistry, keys: dict[str, AgencyKeys]
    ) -> None:
        self.bootstrap = bootstrap
        self.registry = registry
        self.keys = keys
        # Sequence numbers go up per emitter across the whole run: never one used twice.
        self._sequence: Iterator[int] = itertools.count(1)

    def _event(self, cls: type[CaseEvent[Any]], by: str, case_id: UUID, data: Any) -> Any:
        agency = self.registry.agency(by)
        assert agency is not None, by
        return cls.new(
            source=source_urn(agency.oin, "zaaksysteem"),
            case_id=case_id,
            data=data,
            sequence=next(self._sequence),
        )

    async def emit(self, by: str, event: CaseEvent[Any]) -> None:
        """Write `event`, signed by `by`, to `by`'s outbox, keyed by its case."""
        wire = self.keys[by].sign(event)
        await produce(self.bootstrap, outbox(by), [(str(event.subject).encode(), wire)])

    async def open_case(self, by: str = HOLDER) -> UUID:
        """A new `schulden` case held by `by`; its id."""
        case_id = uuid.uuid4()
        data = CaseOpening(category=CATEGORY, summary="Schuldhulptraject browsertest")
        await self.emit(by, self._event(CaseOpened, by, case_id, data))
        return case_id

    async def request_escalation(
        self, case_id: UUID, by: str = HOLDER, level: int = 1, rule_reference: str | None = None
    ) -> None:
        """The holder asks for the case to be escalated, at `level` of its path."""
        data = EscalationRequest(
            reason="Vastgelopen traject", level=level, rule_reference=rule_reference
        )
        await self.emit(by, self._event(EscalationRequested, by, case_id, data))

    async def send_unsigned(self, by: str = HOLDER) -> UUID:
        """An event without a signature in `by`'s outbox: the router must dead-letter it."""
        case_id = uuid.uuid4()
        agency = self.registry.agency(by)
        assert agency is not None, by
        data: dict[str, object] = {"category": CATEGORY, "summary": "Niet ondertekend"}
        wire = raw_event(agency.oin, "case-opened", case_id, data)
        await produce(self.bootstrap, outbox(by), [(str(case_id).encode(), wire)])
        return case_id
