"""Simulated escalation teams: acknowledge promptly, late or never, then resolve.

A team acts on the `escalation-raised` that reaches its agency's inbox and
answers from that agency's outbox, like a real team's tooling. "Late" lets
the first level's window pass, so the next level must be alerted; "never"
lets it climb to the top and be raised again there; then the holder gives up and
closes the case, which withdraws the escalation.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Literal
from uuid import UUID

from contracts.events import (
    EscalationAcknowledged,
    EscalationAcknowledgement,
    EscalationRaised,
    EscalationResolution,
    EscalationResolved,
)
from contracts.registry import AgencyRegistry
from services.runtime.observability.logging import get_logger
from services.simulation.agencies import Agencies, Progress
from services.simulation.plan import TRIGGERS, Response, Story, Timing
from services.simulation.schedule import Action, Scheduler

log = get_logger("ketenbus.simulation")

Outcome = Literal["maatwerk-granted", "handoff-forced", "returned-to-holder", "no-action-needed"]
OUTCOMES: dict[Story, Outcome] = {
    Story.STALLED: "handoff-forced",
    Story.BOUNCED: "handoff-forced",
    Story.HARDSHIP: "maatwerk-granted",
    Story.MANUAL: "returned-to-holder",
}


class Teams:
    """Every escalation team of the registry, answering alerts as each case's plan says."""

    def __init__(
        self,
        registry: AgencyRegistry,
        agencies: Agencies,
        scheduler: Scheduler,
        timing: Timing,
        seed: int,
    ) -> None:
        self.registry = registry
        self.agencies = agencies
        self.scheduler = scheduler
        self.timing = timing
        self.rng = random.Random(seed + 2)  # noqa: S311 - simulated choices, not cryptography
        self.raises: Counter[tuple[UUID, int]] = Counter()
        self.alerts: Counter[UUID] = Counter()
        self.resolved: set[UUID] = set()
        """Escalations resolved once: the story's outcome is given once, then no action."""

    def top_level(self, progress: Progress) -> int:
        plan = progress.plan
        if plan.path is not None:
            return len(plan.path.levels)
        category = self.registry.category(plan.category)
        return len(category.escalation_path.levels) if category else 1

    async def on_alert(self, agency: str, raised: EscalationRaised) -> None:
        data = raised.data
        progress = self.agencies.cases.get(raised.subject)
        if data.team.agency != agency or progress is None or progress.done:
            return
        # The story's own escalation; any other (a handoff that expired while its answer
        # was on the way, say) is answered promptly and changes nothing in the story.
        planned = TRIGGERS.get(progress.plan.story) == data.trigger and progress.escalation in (
            None,
            data.escalation_id,
        )
        if planned:
            progress.escalation = data.escalation_id
        response = progress.plan.response if planned else Response.PROMPT
        self.raises[(data.escalation_id, data.level)] += 1
        self.alerts[data.escalation_id] += 1
        seen = self.alerts[data.escalation_id]
        top = data.level >= self.top_level(progress)
        if response is Response.NEVER:
            if top and self.raises[(data.escalation_id, data.level)] >= 2 and not progress.done:
                log.debug("escalation never answered", case_id=str(raised.subject))
                self.agencies.abandon(progress)
            return
        if response is Response.LATE and seen == 1 and not top:
            return
        # Every alert the team answers is acknowledged, even one for an escalation it
        # answered before: the bus raised it again, so the team's last word was lost.
        window = (data.acknowledge_by - self.scheduler.clock.now()).total_seconds()
        delay = max(0.0, window) * self.rng.uniform(0.1, 0.3)
        self.scheduler.after(delay, self._acknowledge(raised, progress, planned))

    def _acknowledge(self, raised: EscalationRaised, progress: Progress, planned: bool) -> Action:
        async def run() -> None:
            data = raised.data
            ack = EscalationAcknowledgement(
                escalation_id=data.escalation_id, level=data.level, team=data.team
            )
            out = self.agencies.out
            await out.emit(
                data.team.agency, EscalationAcknowledged, raised.subject, ack, causation=raised.id
            )
            self.scheduler.after(
                self.rng.uniform(*self.timing.resolve_after),
                self._resolve(raised, progress, planned),
            )

        return run

    def _resolve(self, raised: EscalationRaised, progress: Progress, planned: bool) -> Action:
        async def run() -> None:
            data = raised.data
            first = planned and data.escalation_id not in self.resolved
            self.resolved.add(data.escalation_id)
            outcome: Outcome = "no-action-needed"
            forced_to = None
            if first:
                outcome = OUTCOMES.get(progress.plan.story, "no-action-needed")
                forced_to = self._receiver(progress) if outcome == "handoff-forced" else None
            resolution = EscalationResolution(
                escalation_id=data.escalation_id,
                team=data.team,
                outcome=outcome,
                handoff_to=forced_to,
            )
            await self.agencies.out.emit(
                data.team.agency, EscalationResolved, raised.subject, resolution
            )
            # The case moves on once the resolution is on the case log (`Agencies.on_case_log`).

        return run

    def _receiver(self, progress: Progress) -> str:
        """Who is made to take the case: the agency it stalled or bounced at, if it can."""
        full = self.agencies.full
        preferred = progress.plan.receivers[0]
        if preferred in full and preferred != progress.holder:
            return preferred
        return self.rng.choice([code for code in full if code != progress.holder])
