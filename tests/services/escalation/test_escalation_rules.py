"""The rules on a workspace, without broker or store: the cases the end-to-end tests
cannot time precisely (a firing whose events only partly went out, a stale timer,
a repeated bounce, a closed case)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.envelope import CaseEvent, source_urn
from contracts.events import (
    CaseClosed,
    CaseClosure,
    CaseOpened,
    CaseOpening,
    DeliveryFailed,
    DeliveryFailure,
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationRaised,
    EscalationRequest,
    EscalationRequested,
    EscalationResolution,
    EscalationResolved,
    HandoffAcceptance,
    HandoffAccepted,
    HandoffExpired,
    HandoffRejected,
    HandoffRejection,
    HandoffRequest,
    HandoffRequested,
    TeamRef,
)
from contracts.handoff import OPERATOR, gateway_source
from contracts.parse import parse_event
from contracts.reasons import WEBHOOK_UNDELIVERABLE
from contracts.registry import AgencyRegistry
from contracts.topics import CASES, inbox
from services.escalation.fire import expiry_raise_id, fire
from services.escalation.levels import Context
from services.escalation.model import Timer, derived_id
from services.escalation.react import inert, react
from services.escalation.workspace import Workspace
from services.runtime.kafka.refusals import Origin

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ORIGIN = Origin("ketenbus.cases", 0, 7, None, b"{}")


class Story:
    """One case's events applied to a workspace, a minute apart."""

    def __init__(self, registry: AgencyRegistry, ws: Workspace | None = None) -> None:
        self.registry = registry
        self.ws = ws or Workspace({}, {})
        self.case_id = uuid.uuid4()
        self.now = START

    def context(self) -> Context:
        source = source_urn(self.registry.operator.oin, "ketenbus-escalation")
        return Context(self.registry, source, self.now, ping_pong_limit=3, repeat=None)

    def tell(self, by: str, cls: type[CaseEvent[Any]], data: Any) -> Any:
        self.now += timedelta(minutes=1)
        agency = self.registry.agency(by)
        assert agency is not None
        event = cls.new(
            source=source_urn(agency.oin, "zaaksysteem"),
            case_id=self.case_id,
            data=data,
            time=self.now,
        )
        react(self.ws, self.context(), event, by, ORIGIN)
        return event

    def open(self, by: str = "uwv") -> None:
        self.tell(by, CaseOpened, CaseOpening(category="schulden", summary="Schulden"))

    def request(self, frm: str, to: str) -> HandoffRequested:
        data = HandoffRequest(
            handoff_id=uuid.uuid4(),
            from_agency=frm,
            to_agency=to,
            reason="Overdracht",
            deadline=self.now + timedelta(hours=4),
        )
        event: HandoffRequested = self.tell(frm, HandoffRequested, data)
        return event

    def reject(self, request: HandoffRequested) -> None:
        data = HandoffRejection(
            handoff_id=request.data.handoff_id,
            from_agency=request.data.from_agency,
            to_agency=request.data.to_agency,
            reason="Niet onze taak",
        )
        self.tell(request.data.to_agency, HandoffRejected, data)

    def accept(self, request: HandoffRequested) -> None:
        data = HandoffAcceptance(
            handoff_id=request.data.handoff_id,
            from_agency=request.data.from_agency,
            to_agency=request.data.to_agency,
        )
        self.tell(request.data.to_agency, HandoffAccepted, data)

    def fire_due(self, timer: Timer) -> list[CaseEvent[Any]]:
        """Fire `timer` at its due time as a round records it; the events it produced."""
        self.now = timer.due_at
        start = len(self.ws.outbox)
        fire(self.ws, self.context(), timer)
        out = [parse_event(m.value) for m in self.ws.outbox[start:] if m.topic == CASES]
        return [event for event in out if event is not None]

    def bus_event_back(self, event: CaseEvent[Any]) -> None:
        """One of the bus's own events read back from the case log."""
        react(self.ws, self.context(), event, OPERATOR, ORIGIN)

    def timer(self, kind: str, ref: UUID | None = None) -> Timer:
        return next(t for t in self.ws.timers.values() if t.kind == kind and ref in (None, t.ref))


def test_a_firing_records_only_what_its_published_events_announce(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    request = story.request("uwv", "svb")
    deadline = story.timer("handoff-deadline")
    story.now = deadline.due_at
    planned = Workspace(copy.deepcopy(story.ws.files), {})
    fire(planned, story.context(), deadline)
    expired_id, raised_id = planned.emitted

    only_expiry = Workspace(copy.deepcopy(story.ws.files), {}, published={expired_id})
    fire(only_expiry, story.context(), deadline)
    nothing = Workspace(copy.deepcopy(story.ws.files), {}, published=set())
    fire(nothing, story.context(), deadline)

    assert [expired_id] == only_expiry.emitted
    assert only_expiry.files[story.case_id].state.pending is not None  # until it is on the log
    assert {} == only_expiry.escalations
    assert [] == nothing.emitted
    assert not nothing.changed_files
    assert request.data.handoff_id == deadline.ref
    assert raised_id != expired_id


def test_a_timer_overtaken_by_events_fires_without_effect(registry: AgencyRegistry) -> None:
    story = Story(registry)
    story.open()
    stale_idle = story.timer("idle")
    request = story.request("uwv", "svb")
    story.reject(request)  # answers the handoff and moves the idle timer
    story.now += timedelta(days=30)
    ws = Workspace(copy.deepcopy(story.ws.files), {})

    fire(ws, story.context(), stale_idle)
    fire(
        ws,
        story.context(),
        Timer.new("handoff-deadline", story.case_id, request.data.handoff_id, story.now),
    )

    assert [] == ws.emitted
    assert stale_idle.id not in story.ws.timers


def test_ping_pong_counts_again_after_it_was_escalated(registry: AgencyRegistry) -> None:
    story = Story(registry)
    story.open()
    for to in ("svb", "cjib", "svb"):
        story.reject(story.request("uwv", to))
    [escalation] = story.ws.escalations.values()
    team = escalation.team
    story.tell(
        team.agency,
        EscalationResolved,
        EscalationResolution(
            escalation_id=escalation.escalation_id,
            team=TeamRef(agency=team.agency, team=team.team),
            outcome="returned-to-holder",
        ),
    )
    for to in ("svb", "cjib"):
        story.reject(story.request("uwv", to))
    assert 1 == len(story.ws.escalations)

    story.reject(story.request("uwv", "svb"))

    assert ["resolved", "raised"] == [e.status for e in story.ws.escalations.values()]


def test_closing_a_case_withdraws_its_escalations_and_refuses_later_requests(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    story.tell("uwv", EscalationRequested, EscalationRequest(reason="Vast"))
    assert 1 == len(story.ws.timers) - 1  # the acknowledge timer, beside the idle one
    story.tell("uwv", CaseClosed, CaseClosure(outcome="Afgerond"))
    before = len(story.ws.outbox)

    story.tell("uwv", EscalationRequested, EscalationRequest(reason="Nog steeds vast"))

    assert ["withdrawn"] == [e.status for e in story.ws.escalations.values()]
    assert {} == story.ws.timers
    assert story.ws.cancels[-1].fired_too
    refusal = story.ws.outbox[before:]
    assert [b"case-closed"] == [
        dict(m.headers).get("ketenbus-reason-code", "").encode() for m in refusal[:1]
    ]


def test_of_the_bus_s_own_events_only_its_expiries_are_loaded_for(
    registry: AgencyRegistry,
) -> None:
    """The consumer skips inert events before loading their cases: the service's own raises
    come back from the case log one per alert."""
    story = Story(registry)
    story.open()
    request = story.request("uwv", "svb")
    expired, raised = story.fire_due(story.timer("handoff-deadline"))

    assert (False, True) == (inert(expired, OPERATOR), inert(raised, OPERATOR))
    assert not inert(request, "uwv")


def test_an_expiry_back_on_the_case_log_ends_the_handoff_and_a_late_answer_is_refused(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    request = story.request("uwv", "svb")
    expired, raised = story.fire_due(story.timer("handoff-deadline"))
    story.bus_event_back(expired)

    story.accept(request)

    file = story.ws.files[story.case_id]
    assert (None, "uwv") == (file.state.pending, file.state.holder)
    assert isinstance(expired, HandoffExpired)
    assert ["raised"] == [e.status for e in story.ws.escalations.values()]
    assert "escalation-raised" == raised.name


def test_an_expiry_read_back_before_its_round_recorded_it_records_the_raise_without_resending(
    registry: AgencyRegistry,
) -> None:
    """The round produced the expiry and its raise and marked the timer produced; the
    consumer reads the expiry first and records the raise, but sends it only if no round
    produced it (a round that died before producing it)."""
    for produced_by_round, sent in ((True, []), (False, ["escalation-raised"])):
        story = Story(registry)
        story.open()
        story.request("uwv", "svb")
        timer = story.timer("handoff-deadline")
        unrecorded = copy.deepcopy(story.ws)
        expired, raised = story.fire_due(timer)
        story.ws = unrecorded
        if produced_by_round:
            story.ws.already_out.add(expiry_raise_id(timer.id))
        start = len(story.ws.outbox)

        story.bus_event_back(expired)

        [escalation] = story.ws.escalations.values()
        again = [parse_event(m.value) for m in story.ws.outbox[start:] if m.topic == CASES]
        assert (raised.data.escalation_id, "raised") == (
            escalation.escalation_id,
            escalation.status,
        )
        assert sent == [e.name for e in again if e is not None]
        assert all(e is None or e.id == raised.id for e in again)


def test_an_expiry_overtaken_by_the_answer_on_the_case_log_withdraws_its_escalation(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    request = story.request("uwv", "svb")
    expired, raised = story.fire_due(story.timer("handoff-deadline"))
    story.accept(request)  # ahead of the expiry on the log: the tracker takes the answer
    start = len(story.ws.outbox)

    story.bus_event_back(expired)

    file = story.ws.files[story.case_id]
    [escalation] = story.ws.escalations.values()
    resolutions = [parse_event(m.value) for m in story.ws.outbox[start:] if m.topic == CASES]
    assert ("svb", None) == (file.state.holder, file.state.pending)
    assert ("withdrawn", "no-action-needed") == (escalation.status, escalation.outcome)
    assert [(raised.data.escalation_id, "no-action-needed")] == [
        (r.data.escalation_id, r.data.outcome)
        for r in resolutions
        if isinstance(r, EscalationResolved)
    ]
    assert story.ws.cancels[-1].fired_too


def test_an_acknowledgement_from_the_next_level_counts_before_the_climb_is_recorded(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    story.tell("uwv", EscalationRequested, EscalationRequest(reason="Vast"))
    [escalation] = story.ws.escalations.values()
    path = story.ws.files[story.case_id].effective_path(registry)
    assert path is not None
    second = path.at(2)
    assert 1 == escalation.level

    story.tell(
        second.agency,
        EscalationAcknowledged,
        EscalationAcknowledgement(
            escalation_id=escalation.escalation_id,
            level=2,
            team=TeamRef(agency=second.agency, team=second.team),
        ),
    )

    assert ("acknowledged", 2) == (escalation.status, escalation.level)
    assert (second.agency, second.team) == (escalation.team.agency, escalation.team.team)


def test_an_acknowledgement_from_a_team_not_on_the_path_is_ignored(
    registry: AgencyRegistry,
) -> None:
    story = Story(registry)
    story.open()
    story.tell("uwv", EscalationRequested, EscalationRequest(reason="Vast"))
    [escalation] = story.ws.escalations.values()

    story.tell(
        "svb",
        EscalationAcknowledged,
        EscalationAcknowledgement(
            escalation_id=escalation.escalation_id,
            level=1,
            team=TeamRef(agency="svb", team="teamleiding"),
        ),
    )

    assert ("raised", 1) == (escalation.status, escalation.level)


def _gateway_notice(story: Story, request: HandoffRequested) -> DeliveryFailed:
    return DeliveryFailed.new(
        source=gateway_source(story.registry),
        case_id=story.case_id,
        causationid=request.id,
        time=story.now,
        data=DeliveryFailure(
            reason_code=WEBHOOK_UNDELIVERABLE,
            reason="the receiver's webhook did not take the event",
            rejected_event_id=str(request.id),
            topic=inbox(request.data.to_agency),
            partition=0,
            offset=3,
        ),
    )


def test_a_request_and_the_gateways_notice_in_one_batch_bring_the_new_deadline_to_now(
    registry: AgencyRegistry,
) -> None:
    """The timer set in the same work is brought forward at once (the store has not got it
    yet); fired now, it expires the handoff with the ids its deadline would have given, and
    the escalation says the request was not delivered. The gateway's notices are loaded
    for, not skipped as inert."""
    story = Story(registry)
    story.open()
    request = story.request("uwv", "svb")
    deadline = story.timer("handoff-deadline")
    notice = _gateway_notice(story, request)
    story.bus_event_back(notice)
    early = story.timer("handoff-deadline")

    expired, raised = story.fire_due(early)

    assert not inert(notice, OPERATOR)
    assert (deadline.id, story.now, request.id) == (early.id, early.due_at, early.causation_id)
    assert early.due_at < request.data.deadline
    assert isinstance(expired, HandoffExpired)
    assert isinstance(raised, EscalationRaised)
    assert (derived_id(deadline.id, "handoff-expired"), expiry_raise_id(deadline.id)) == (
        expired.id,
        raised.id,
    )
    assert "handoff uwv -> svb request not delivered to svb" in raised.data.cause
