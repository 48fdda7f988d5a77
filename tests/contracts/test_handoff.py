"""The handoff state machine on its own: every rule, no database, no broker."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from contracts.envelope import CaseEvent
from contracts.events import DeliveryFailed, DeliveryFailure
from contracts.handoff import (
    OPERATOR,
    Applied,
    CaseState,
    Decision,
    PendingHandoff,
    Refused,
    decide,
    emitter_of,
    escalation_agencies,
)
from contracts.registry import AgencyRegistry
from tests._testutil import UNKNOWN_OIN, EventFactory

CASE = uuid.UUID("6f0d4c3e-8a55-4c1b-9e0b-2f6a7d1c5b10")
HANDOFF = uuid.UUID("1b9b7a52-0c4e-4a9e-8a86-1d2f0b7c3e44")
ESCALATION = uuid.UUID("8d3c2b1a-4f5e-4d6c-9b8a-7e6f5d4c3b2a")


def _apply(make: EventFactory, state: CaseState | None, event: CaseEvent[Any]) -> Decision:
    return decide(state, event, emitter_of(event.source, make.registry))


def _opened(make: EventFactory, holder: str = "uwv") -> CaseState:
    decision = _apply(make, None, make.opened(CASE, by=holder))
    assert isinstance(decision, Applied)
    return decision.state


def _pending(make: EventFactory, frm: str = "uwv", to: str = "svb") -> CaseState:
    decision = _apply(make, _opened(make, frm), make.requested(CASE, HANDOFF, frm, to))
    assert isinstance(decision, Applied)
    return decision.state


def _refusal(decision: Decision) -> str:
    assert isinstance(decision, Refused), decision
    return decision.reason


def test_emitter_of_names_the_agency_of_a_source_oin(registry: AgencyRegistry) -> None:
    make = EventFactory(registry)
    assert emitter_of(make.source("gm0363"), registry) == "gm0363"


def test_emitter_of_names_the_operator_ketenbus(registry: AgencyRegistry) -> None:
    make = EventFactory(registry)
    assert emitter_of(make.source("ketenbus"), registry) == OPERATOR == "ketenbus"


def test_emitter_of_an_oin_outside_the_registry_is_none(registry: AgencyRegistry) -> None:
    make = EventFactory(registry)
    assert emitter_of(make.source("unknown"), registry) is None
    assert emitter_of("not a urn", registry) is None


def test_case_opened_creates_an_open_case_held_by_the_emitter(make: EventFactory) -> None:
    event = make.opened(CASE, by="toeslagen", category="toeslagen-herstel")

    decision = _apply(make, None, event)

    expected = CaseState(
        case_id=CASE,
        category="toeslagen-herstel",
        holder="toeslagen",
        status="open",
        opened_at=event.time,
        last_event_at=event.time,
    )
    assert decision == Applied(expected)


def test_case_opened_for_a_case_that_exists_is_refused(make: EventFactory) -> None:
    state = _opened(make)
    reason = _refusal(_apply(make, state, make.opened(CASE, by="svb")))
    assert reason == "the case already exists (status open, holder uwv)"


def test_case_opened_by_the_bus_operator_is_refused(make: EventFactory) -> None:
    reason = _refusal(_apply(make, None, make.opened(CASE, by="ketenbus")))
    assert reason == "the bus operator cannot hold a case"


def test_an_event_from_a_source_outside_the_registry_is_refused(make: EventFactory) -> None:
    reason = _refusal(_apply(make, None, make.opened(CASE, by="unknown")))
    assert reason == f"source OIN {UNKNOWN_OIN} is not in the agency registry"


@pytest.mark.parametrize(
    "build",
    [
        lambda make: make.requested(CASE, HANDOFF),
        lambda make: make.accepted(CASE, HANDOFF),
        lambda make: make.rejected(CASE, HANDOFF),
        lambda make: make.expired(CASE, HANDOFF),
        lambda make: make.context_updated(CASE),
        lambda make: make.escalation_raised(CASE),
        lambda make: make.closed(CASE),
    ],
    ids=["requested", "accepted", "rejected", "expired", "context", "escalation", "closed"],
)
def test_any_event_for_an_unknown_case_is_refused(make: EventFactory, build: Any) -> None:
    assert _refusal(_apply(make, None, build(make))) == "unknown case"


def test_handoff_requested_by_the_holder_makes_it_pending(make: EventFactory) -> None:
    state = _opened(make)
    event = make.requested(CASE, HANDOFF, "uwv", "svb")

    decision = _apply(make, state, event)

    pending = PendingHandoff(HANDOFF, "uwv", "svb", event.data.deadline)
    assert decision == Applied(replace(state, pending=pending, last_event_at=event.time))


def test_handoff_requested_by_another_agency_than_the_holder_is_refused(
    make: EventFactory,
) -> None:
    state = _opened(make, "uwv")
    reason = _refusal(_apply(make, state, make.requested(CASE, HANDOFF, "svb", "cak")))
    assert reason == "only the holder (uwv) may request a handoff, not svb"


def test_handoff_requested_naming_another_from_agency_than_the_holder_is_refused(
    make: EventFactory,
) -> None:
    state = _opened(make, "uwv")
    event = make.requested(CASE, HANDOFF, frm="svb", to="cak", by="uwv")
    reason = _refusal(_apply(make, state, event))
    assert reason == "from_agency svb is not the holder (uwv)"


def test_handoff_requested_while_another_is_pending_is_refused(make: EventFactory) -> None:
    state = _pending(make, "uwv", "svb")
    reason = _refusal(_apply(make, state, make.requested(CASE, uuid.uuid4(), "uwv", "cak")))
    assert reason == f"handoff {HANDOFF} to svb is still pending"


def test_handoff_accepted_by_the_receiver_makes_it_the_holder(make: EventFactory) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.accepted(CASE, HANDOFF, "uwv", "svb")

    decision = _apply(make, state, event)

    assert decision == Applied(replace(state, holder="svb", pending=None, last_event_at=event.time))


def test_handoff_accepted_without_a_pending_handoff_is_refused(make: EventFactory) -> None:
    state = _opened(make)
    reason = _refusal(_apply(make, state, make.accepted(CASE, HANDOFF, "uwv", "svb")))
    assert reason == "no handoff is pending"


def test_handoff_accepted_for_another_handoff_id_is_refused(make: EventFactory) -> None:
    state = _pending(make)
    other = uuid.uuid4()
    reason = _refusal(_apply(make, state, make.accepted(CASE, other, "uwv", "svb")))
    assert reason == f"handoff {other} is not pending (pending: {HANDOFF})"


def test_handoff_accepted_by_another_agency_than_the_receiver_is_refused(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.accepted(CASE, HANDOFF, "uwv", "svb", by="cak")
    reason = _refusal(_apply(make, state, event))
    assert reason == f"only svb may accept handoff {HANDOFF}, not cak"


def test_handoff_accepted_naming_other_agencies_than_requested_is_refused(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.accepted(CASE, HANDOFF, "uwv", "cak", by="svb")
    reason = _refusal(_apply(make, state, event))
    assert reason == f"handoff {HANDOFF} is from uwv to svb, not from uwv to cak"


def test_handoff_rejected_by_the_receiver_keeps_the_holder_and_counts_a_bounce(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.rejected(CASE, HANDOFF, "uwv", "svb")

    decision = _apply(make, state, event)

    assert decision == Applied(
        replace(state, holder="uwv", pending=None, bounce_count=1, last_event_at=event.time)
    )


def test_handoff_rejected_by_another_agency_than_the_receiver_is_refused(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.rejected(CASE, HANDOFF, "uwv", "svb", by="uwv")
    reason = _refusal(_apply(make, state, event))
    assert reason == f"only svb may reject handoff {HANDOFF}, not uwv"


def test_handoff_rejected_without_a_pending_handoff_is_refused(make: EventFactory) -> None:
    reason = _refusal(_apply(make, _opened(make), make.rejected(CASE, HANDOFF)))
    assert reason == "no handoff is pending"


def test_handoff_expired_by_the_operator_clears_the_pending_handoff(make: EventFactory) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.expired(CASE, HANDOFF, "uwv", "svb")

    decision = _apply(make, state, event)

    assert decision == Applied(replace(state, pending=None, last_event_at=event.time))


def test_handoff_expired_emitted_by_an_agency_is_refused(make: EventFactory) -> None:
    state = _pending(make, "uwv", "svb")
    reason = _refusal(_apply(make, state, make.expired(CASE, HANDOFF, by="svb")))
    assert reason == "only the bus operator (ketenbus) may expire a handoff, not svb"


def test_handoff_expired_for_a_handoff_that_is_not_pending_is_refused(
    make: EventFactory,
) -> None:
    state = _pending(make)
    other = uuid.uuid4()
    reason = _refusal(_apply(make, state, make.expired(CASE, other)))
    assert reason == f"handoff {other} is not pending (pending: {HANDOFF})"


@pytest.mark.parametrize(
    "build",
    [
        lambda make: make.context_updated(CASE, by="svb"),
        lambda make: make.escalation_raised(CASE),
        lambda make: make.escalation_resolved(CASE, uuid.uuid4()),
    ],
    ids=["context-updated", "escalation-raised", "escalation-resolved"],
)
def test_context_and_escalation_events_are_applied_and_change_only_the_last_event_time(
    make: EventFactory, build: Any
) -> None:
    state = _pending(make)
    event = build(make)

    decision = _apply(make, state, event)

    assert decision == Applied(replace(state, last_event_at=event.time))


def test_case_closed_by_the_holder_closes_it_and_drops_a_pending_handoff(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.closed(CASE, by="uwv")

    decision = _apply(make, state, event)

    assert decision == Applied(
        replace(state, status="closed", pending=None, last_event_at=event.time)
    )


def test_case_closed_by_another_agency_than_the_holder_is_refused(make: EventFactory) -> None:
    reason = _refusal(_apply(make, _opened(make, "uwv"), make.closed(CASE, by="svb")))
    assert reason == "only the holder (uwv) may close the case, not svb"


@pytest.mark.parametrize(
    "build",
    [
        lambda make: make.requested(CASE, HANDOFF),
        lambda make: make.context_updated(CASE),
        lambda make: make.escalation_raised(CASE),
        lambda make: make.closed(CASE),
    ],
    ids=["requested", "context", "escalation", "closed-again"],
)
def test_nothing_is_applied_to_a_closed_case(make: EventFactory, build: Any) -> None:
    closed = replace(_opened(make), status="closed")
    assert _refusal(_apply(make, closed, build(make))) == "the case is closed"


def _notice(make: EventFactory, by: str) -> DeliveryFailed:
    return DeliveryFailed.new(
        source=make.source(by),
        case_id=CASE,
        data=DeliveryFailure(
            reason_code="unknown-type", reason="x", topic="agency.uwv.outbox", partition=0, offset=1
        ),
    )


def test_a_delivery_failure_notice_from_an_agency_is_refused_as_not_part_of_a_case(
    make: EventFactory,
) -> None:
    reason = _refusal(_apply(make, _opened(make), _notice(make, "uwv")))
    assert reason == "delivery-failed is a notice to an agency, not part of a case"


def test_the_buss_own_delivery_failure_notice_is_recorded_changing_only_the_last_event_time(
    make: EventFactory,
) -> None:
    """The gateway's notice on the case log (a handoff request its receiver's webhook never
    took) is the bus's: recorded like its other events, the handoff still pending."""
    state = _pending(make)
    notice = _notice(make, "ketenbus")

    decision = _apply(make, state, notice)

    assert Applied(replace(state, last_event_at=notice.time)) == decision
    assert "unknown case" == _refusal(_apply(make, None, notice))


def test_an_event_with_an_older_time_does_not_move_the_last_event_time_back(
    make: EventFactory,
) -> None:
    state = _opened(make)
    late = make.context_updated(CASE).model_copy(update={"time": state.opened_at - timedelta(1)})

    decision = _apply(make, state, late)

    assert decision == Applied(state)


SCHULDEN_PATH = frozenset({"gm0363", "minszw"})
"""The agencies on the `schulden` category's default escalation path."""


def _forced(make: EventFactory, by: str, to: str = "cak") -> CaseEvent[Any]:
    return make.escalation_resolved(CASE, ESCALATION, "handoff-forced", handoff_to=to, by=by)


def test_escalation_agencies_are_those_with_a_team_on_the_categorys_default_path(
    registry: AgencyRegistry,
) -> None:
    assert SCHULDEN_PATH == escalation_agencies(registry, "schulden")
    assert frozenset() == escalation_agencies(registry, "no-such-category")


def test_a_handoff_forced_by_an_agency_on_the_escalation_path_moves_the_holder(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = _forced(make, by="gm0363", to="cak")

    decision = decide(state, event, "gm0363", path=SCHULDEN_PATH)

    assert Applied(replace(state, holder="cak", pending=None, last_event_at=event.time)) == decision


def test_a_handoff_forced_by_the_operator_moves_the_holder(make: EventFactory) -> None:
    state = _opened(make, "uwv")
    event = _forced(make, by="ketenbus", to="svb")

    decision = decide(state, event, emitter_of(event.source, make.registry))

    assert Applied(replace(state, holder="svb", last_event_at=event.time)) == decision


def test_a_handoff_forced_by_an_agency_off_the_escalation_path_is_refused(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")

    decision = decide(state, _forced(make, by="svb"), "svb", path=SCHULDEN_PATH)

    assert (
        "only an agency on the escalation path (gm0363, minszw) or the bus operator "
        "may force a handoff, not svb"
    ) == _refusal(decision)


def test_a_handoff_forced_to_the_operator_is_refused(make: EventFactory) -> None:
    decision = decide(
        _opened(make), _forced(make, by="gm0363", to="ketenbus"), "gm0363", path=SCHULDEN_PATH
    )
    assert "the bus operator cannot hold a case" == _refusal(decision)


def test_a_forced_handoff_without_a_receiver_is_recorded_and_keeps_the_holder(
    make: EventFactory,
) -> None:
    state = _pending(make, "uwv", "svb")
    event = make.escalation_resolved(CASE, ESCALATION, "handoff-forced", by="gm0363")

    decision = decide(state, event, "gm0363", path=SCHULDEN_PATH)

    assert Applied(replace(state, last_event_at=event.time)) == decision


def test_a_resolution_with_another_outcome_and_a_receiver_keeps_the_holder(
    make: EventFactory,
) -> None:
    state = _opened(make, "uwv")
    event = make.escalation_resolved(
        CASE, ESCALATION, "returned-to-holder", handoff_to="cak", by="gm0363"
    )

    decision = decide(state, event, "gm0363", path=SCHULDEN_PATH)

    assert Applied(replace(state, last_event_at=event.time)) == decision


@pytest.mark.parametrize(
    "build",
    [
        lambda make: make.escalation_raised(CASE, trigger="handoff-expired"),
        lambda make: make.expired(CASE, HANDOFF, by="ketenbus"),
        lambda make: make.escalation_acknowledged(CASE, ESCALATION, by="ketenbus"),
        lambda make: make.escalation_resolved(CASE, ESCALATION, by="ketenbus"),
    ],
    ids=["escalation-raised", "handoff-expired", "escalation-acknowledged", "escalation-resolved"],
)
def test_escalation_events_emitted_by_the_operator_are_applied(
    make: EventFactory, build: Any
) -> None:
    state = _pending(make, "uwv", "svb")
    event = build(make)

    decision = _apply(make, state, event)

    assert isinstance(decision, Applied), decision
    assert (OPERATOR, "uwv", event.time) == (
        emitter_of(event.source, make.registry),
        decision.state.holder,
        decision.state.last_event_at,
    )
