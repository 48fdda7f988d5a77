"""Simulated agencies: each case's story told through the outboxes, driven by the inboxes.

An agency acts on what reaches its inbox (a request addressed to it, the
answer to its own request), as a real agency system would, so the router's
delivery is part of what the simulation exercises. Stories that must stall
simply never answer; stories that bounce reject until the ping-pong limit.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from contracts.envelope import CaseEvent
from contracts.events import (
    CaseClosed,
    CaseContextUpdated,
    CaseOpened,
    EscalationRequested,
    EscalationResolved,
    HandoffAccepted,
    HandoffRejected,
    HandoffRequested,
)
from services.runtime.observability.logging import get_logger
from services.simulation import payloads
from services.simulation.outbox import Outboxes
from services.simulation.plan import CasePlan, Story, Timing
from services.simulation.schedule import Action, Scheduler

log = get_logger("ketenbus.simulation")

Step = Callable[..., Awaitable[None]]
"""An agency's next step on a case: called with the case's progress (and more)."""


@dataclass(slots=True)
class Progress:
    """How far one case's story has come, as its agencies and teams saw it."""

    plan: CasePlan
    holder: str
    asked: int = 0
    handoffs: dict[UUID, int] = field(default_factory=dict)
    handed_on: bool = False
    escalation: UUID | None = None
    resolved: bool = False
    closed: bool = False
    abandoned: bool = False
    """Nobody acknowledged even the top level: the holder closes the case regardless."""

    @property
    def done(self) -> bool:
        return self.closed


class Agencies:
    """Every simulated case, and the agencies that hold, pass on and close them."""

    def __init__(
        self,
        plans: list[CasePlan],
        *,
        full: list[str],
        out: Outboxes,
        scheduler: Scheduler,
        timing: Timing,
        seed: int,
    ) -> None:
        self.full = full
        """The agencies that may hold and close a case (a forced handoff goes to one)."""
        self.out = out
        self.scheduler = scheduler
        self.timing = timing
        self.rng = random.Random(seed + 1)  # noqa: S311 - simulated choices, not cryptography
        self.cases = {plan.case_id: Progress(plan, plan.opener) for plan in plans}
        self.closed = 0
        self.gave_up = 0
        start = scheduler.clock.now()
        for progress in self.cases.values():
            when = start + timedelta(seconds=progress.plan.opens_after)
            scheduler.at(when, self._act(self.open, progress))

    @property
    def unfinished(self) -> int:
        return len(self.cases) - self.closed

    def _act(self, step: Step, progress: Progress, *args: Any) -> Action:
        async def run() -> None:
            await step(progress, *args)

        return run

    def later(self, span: tuple[float, float], step: Step, progress: Progress, *args: Any) -> None:
        self.scheduler.after(self.rng.uniform(*span), self._act(step, progress, *args))

    async def open(self, progress: Progress) -> None:
        plan = progress.plan
        opening = payloads.opening(plan, self.out.clock.now())
        await self.out.emit(plan.opener, CaseOpened, plan.case_id, opening)
        log.debug("simulated case opened", case_id=str(plan.case_id), story=plan.story)
        self.later(self.timing.step, self.request, progress)
        self.scheduler.after(self.timing.patience, self._act(self.give_up, progress))

    async def request(self, progress: Progress) -> None:
        plan = progress.plan
        receiver = plan.receivers[progress.asked]
        if receiver == progress.holder:
            # A late answer or a forced handoff made the next receiver the holder already.
            progress.asked = len(plan.receivers)
            progress.handed_on = True
            self.maybe_close(progress)
            return
        handoff_id = uuid.uuid4()
        progress.handoffs[handoff_id] = progress.asked
        progress.asked += 1
        deadline = self.out.clock.now() + timedelta(seconds=self.timing.handoff_deadline)
        request = payloads.handoff_request(handoff_id, progress.holder, receiver, deadline)
        await self.out.emit(progress.holder, HandoffRequested, plan.case_id, request)

    async def on_inbox(self, agency: str, event: CaseEvent[Any]) -> None:
        progress = self.cases.get(event.subject)
        if progress is None or progress.done:
            return
        if isinstance(event, HandoffRequested) and event.data.to_agency == agency:
            index = progress.handoffs.get(event.data.handoff_id)
            if index is not None and progress.plan.story is not Story.STALLED:
                self.later(self.timing.answer, self.answer, progress, event, index)
        elif isinstance(event, HandoffAccepted) and event.data.from_agency == agency:
            progress.holder = event.data.to_agency
            await self._accepted(progress)
        elif (
            isinstance(event, HandoffRejected)
            and event.data.from_agency == agency
            and progress.asked < len(progress.plan.receivers)
        ):
            self.later(self.timing.step, self.request, progress)

    def on_case_log(self, event: CaseEvent[Any]) -> None:
        """The case's escalation resolved on the case log: its holder (a new one, if the
        handoff was forced) takes it from there.

        Read from the case log, not from an inbox: the router tells `handoff_to`, but
        not a holder that keeps the case, and acting on the team's word alone would
        race the resolution: a close sent from another outbox can reach the case log
        first.
        """
        progress = self.cases.get(event.subject)
        if progress is None or progress.done or not isinstance(event, EscalationResolved):
            return
        if event.data.escalation_id == progress.escalation:
            forced = event.data.outcome == "handoff-forced"
            self.resolved(progress, event.data.handoff_to if forced else None)

    async def answer(self, progress: Progress, request: HandoffRequested, index: int) -> None:
        plan = progress.plan
        refuse = plan.story is Story.BOUNCED or (plan.story is Story.REJECTED and index == 0)
        kind, answer = payloads.answer(request, refuse=refuse, rng=self.rng)
        await self.out.emit(
            request.data.to_agency, kind, plan.case_id, answer, causation=request.id
        )

    async def _accepted(self, progress: Progress) -> None:
        plan = progress.plan
        if progress.asked < len(plan.receivers):
            self.later(self.timing.step, self.request, progress)
            return
        progress.handed_on = True
        if plan.story is Story.HARDSHIP and not plan.flag_at_open:
            self.later(self.timing.step, self.flag, progress)
        elif plan.story is Story.MANUAL:
            self.later(self.timing.step, self.ask_escalation, progress)
        self.maybe_close(progress)

    async def flag(self, progress: Progress) -> None:
        plan = progress.plan
        update = payloads.flag_update(plan, progress.holder)
        await self.out.emit(progress.holder, CaseContextUpdated, plan.case_id, update)

    async def ask_escalation(self, progress: Progress) -> None:
        """Half the requests come from the holder, half from the agency that opened the case."""
        plan = progress.plan
        asker = progress.holder if plan.case_id.int % 2 else plan.opener
        await self.out.emit(asker, EscalationRequested, plan.case_id, payloads.escalation_request())

    def resolved(self, progress: Progress, forced_to: str | None) -> None:
        """A team resolved the case's escalation: a forced handoff makes a new holder."""
        progress.resolved = True
        if forced_to is not None:
            progress.holder = forced_to
            progress.handed_on = True
        self.maybe_close(progress)

    def abandon(self, progress: Progress) -> None:
        """The top level was raised again and still nobody answers: the holder closes the
        case, which withdraws the escalation (else it would be re-raised until the run ends)."""
        if not progress.abandoned:
            progress.abandoned = True
            self.later(self.timing.step, self.close, progress)

    def maybe_close(self, progress: Progress) -> None:
        story_over = progress.handed_on and (progress.resolved or not progress.plan.escalates)
        if story_over and not progress.done and not progress.abandoned:
            self.later(self.timing.step, self.close, progress)

    async def give_up(self, progress: Progress) -> None:
        """The story did not end in its time (the bus derailed it): close the case."""
        if not progress.done:
            log.info("simulated story given up", case_id=str(progress.plan.case_id))
            self.gave_up += 1
            await self.close(progress)

    async def close(self, progress: Progress) -> None:
        if progress.done:
            return
        progress.closed = True
        self.closed += 1
        await self.out.emit(progress.holder, CaseClosed, progress.plan.case_id, payloads.closure())
