"""Holder rights as the router checks them (`rights.admit`), on a custody ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.custody import Ledger
from services.router.rights import admit
from tests._testutil import EventFactory


def _admitted(registry: AgencyRegistry, events: Sequence[tuple[CaseEvent[Any], str]]) -> Ledger:
    """A ledger after `(event, emitter)` pairs that must all be admitted."""
    ledger = Ledger({})
    for event, emitter in events:
        assert None is admit(ledger, registry, event, emitter), (event.name, emitter)
    return ledger


def _opened_and_requested(
    registry: AgencyRegistry, make: EventFactory, case_id: uuid.UUID, handoff_id: uuid.UUID
) -> Ledger:
    """uwv holds the case and asked svb to take it over."""
    return _admitted(
        registry,
        [
            (make.opened(case_id, by="uwv"), "uwv"),
            (make.requested(case_id, handoff_id, "uwv", "svb"), "uwv"),
        ],
    )


def test_a_case_opened_makes_its_emitter_the_holder(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()

    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    assert "uwv" == ledger.cases[case_id].state.holder
    assert ["uwv"] == ledger.cases[case_id].holders
    assert {case_id} == ledger.changed


def test_an_event_for_a_case_the_bus_has_not_seen_opened_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = Ledger({})

    reason = admit(ledger, registry, make.context_updated(case_id, by="uwv"), "uwv")

    assert reason is not None
    assert "not known" in reason
    assert {} == ledger.cases


def test_a_case_opened_in_a_category_the_registry_lacks_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    ledger = Ledger({})

    reason = admit(ledger, registry, make.opened(uuid.uuid4(), category="onbekend"), "uwv")

    assert reason is not None
    assert "'onbekend'" in reason
    assert {} == ledger.cases


def test_the_holders_handoff_request_is_admitted_and_pends(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()

    ledger = _opened_and_requested(registry, make, case_id, handoff_id)

    pending = ledger.cases[case_id].state.pending
    assert pending is not None
    assert (handoff_id, "uwv", "svb") == (
        pending.handoff_id,
        pending.from_agency,
        pending.to_agency,
    )


def test_a_handoff_request_by_an_agency_that_does_not_hold_the_case_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    reason = admit(ledger, registry, make.requested(case_id, uuid.uuid4(), "cjib", "svb"), "cjib")

    assert reason is not None
    assert "only the holder" in reason
    assert ledger.cases[case_id].state.pending is None


def test_an_accept_by_an_agency_other_than_the_receiver_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    ledger = _opened_and_requested(registry, make, case_id, handoff_id)

    reason = admit(
        ledger, registry, make.accepted(case_id, handoff_id, "uwv", "svb", by="cjib"), "cjib"
    )

    assert reason is not None
    assert "only svb may accept" in reason
    assert "uwv" == ledger.cases[case_id].state.holder
    assert ["uwv"] == ledger.cases[case_id].holders


def test_the_receivers_accept_makes_it_the_holder_and_keeps_the_past_holder(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    ledger = _opened_and_requested(registry, make, case_id, handoff_id)

    reason = admit(ledger, registry, make.accepted(case_id, handoff_id, "uwv", "svb"), "svb")

    assert None is reason
    assert "svb" == ledger.cases[case_id].state.holder
    assert ["uwv", "svb"] == ledger.cases[case_id].holders


def test_a_close_by_an_agency_that_does_not_hold_the_case_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    reason = admit(ledger, registry, make.closed(case_id, by="svb"), "svb")

    assert reason is not None
    assert "only the holder (uwv) may close" in reason
    assert "open" == ledger.cases[case_id].state.status


def test_an_escalation_request_by_an_agency_that_never_held_the_case_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    # gm0363 is on the schulden escalation path, but has never held this case.
    reason = admit(ledger, registry, make.escalation_requested(case_id, by="gm0363"), "gm0363")

    assert reason is not None
    assert "never held" in reason


def test_a_past_holder_may_still_request_escalation(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    ledger = _opened_and_requested(registry, make, case_id, handoff_id)
    assert None is admit(ledger, registry, make.accepted(case_id, handoff_id, "uwv", "svb"), "svb")
    assert "svb" == ledger.cases[case_id].state.holder

    reason = admit(ledger, registry, make.escalation_requested(case_id, by="uwv"), "uwv")

    assert None is reason


def test_a_case_opened_twice_is_refused(registry: AgencyRegistry, make: EventFactory) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    reason = admit(ledger, registry, make.opened(case_id, by="svb"), "svb")

    assert reason is not None
    assert "uwv" == ledger.cases[case_id].state.holder


def test_a_handoff_request_to_an_agency_not_in_the_registry_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])

    reason = admit(ledger, registry, make.requested(case_id, uuid.uuid4(), "uwv", "nobody"), "uwv")

    assert reason is not None
    assert ledger.cases[case_id].state.pending is None


def test_a_forced_handoff_to_an_agency_not_in_the_registry_is_refused(
    registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    ledger = _admitted(registry, [(make.opened(case_id, by="uwv"), "uwv")])
    forced = make.escalation_resolved(
        case_id, uuid.uuid4(), "handoff-forced", handoff_to="nobody", by="gm0363"
    )

    reason = admit(ledger, registry, forced, "gm0363")

    assert reason is not None
    assert "uwv" == ledger.cases[case_id].state.holder
