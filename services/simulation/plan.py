"""What each simulated case will go through, decided up front from a seed.

Deciding every case's story before the run starts keeps the simulation
reproducible (same seed, same stories) and lets the run know when it is done:
every story has a last step, and the run waits for that step, not for quiet.
The stories cover every escalation trigger the bus must catch: handoffs never
answered, cases bounced until ping-pong, hardship flags, and manual requests;
and every team behaviour that makes levels climb: late and never.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

from contracts.case import EscalationLevel, EscalationPath
from contracts.registry import Agency, AgencyRegistry
from services.runtime.errors import UserError


class Story(StrEnum):
    """The path of one case through the region."""

    SMOOTH = "smooth"  # handed along a chain, every handoff accepted, closed
    REJECTED = "rejected"  # one rejection, then another agency accepts
    STALLED = "stalled"  # a handoff the receiver never answers: expiry, escalation
    BOUNCED = "bounced"  # rejected until the ping-pong limit: escalation
    HARDSHIP = "hardship"  # a hardship flag: escalated at once, at the flag's level
    MANUAL = "manual"  # a (past) holder asks for an escalation


TRIGGERS: dict[Story, str] = {
    Story.STALLED: "handoff-expired",
    Story.BOUNCED: "ping-pong",
    Story.HARDSHIP: "hardship",
    Story.MANUAL: "manual",
}
"""The escalation trigger each escalating story is about."""


class Response(StrEnum):
    """How the escalation teams answer the case's escalation."""

    PROMPT = "prompt"  # acknowledged well within the level's time, then resolved
    LATE = "late"  # not acknowledged in time: the next level acknowledges, resolves
    NEVER = "never"  # nobody acknowledges: it climbs to the top, is raised again, withdrawn


STORY_WEIGHTS = {
    Story.SMOOTH: 40,
    Story.REJECTED: 12,
    Story.STALLED: 14,
    Story.BOUNCED: 12,
    Story.HARDSHIP: 12,
    Story.MANUAL: 10,
}
RESPONSE_WEIGHTS = {Response.PROMPT: 60, Response.LATE: 25, Response.NEVER: 15}

FULL_EVENTS = frozenset({"case-opened", "handoff-requested", "handoff-accepted", "case-closed"})
"""What an agency must be allowed to emit to open, hold, pass on and close a case."""


OPENING_RATE = 25.0
"""Cases opened per real second, by default. A case costs the one process that runs the
services and the simulators about 20 ms of CPU, and the escalation service's case-log
consumer is busy most of the time at 40 a second: sustained beyond that, the backlog,
not the services' rules, would make the verdict."""


@dataclass(frozen=True, slots=True)
class Timing:
    """The durations agencies and teams keep, in seconds of clock time."""

    open_window: float
    """Cases are opened spread over this span from the start."""
    answer: tuple[float, float]
    """How long a receiver takes to accept or reject a handoff."""
    step: tuple[float, float]
    """How long a holder takes for its next step (a request, a close)."""
    handoff_deadline: float
    """How long a receiver has to answer a handoff request."""
    acknowledge_within: tuple[float, ...]
    """Each level's time to acknowledge, on the case's own path (the category's teams)."""
    resolve_after: tuple[float, float]
    """How long a team takes from acknowledging to resolving."""

    @classmethod
    def paced(cls, speed: float, cases: int, rate: float = OPENING_RATE) -> Timing:
        """Durations that take the same real time at any speed.

        The pace is set in real seconds: `rate` cases opened a second, answers
        within a second, a handoff
        deadline of 3 s, acknowledge windows of 2, 3 and 4 s. That is long
        next to the bus's own latency (tenths of a second), so a prompt team
        is in time and the stories stay what they are meant to be at any
        speed; at speed 3600 the same run is a region's working day, with
        windows of hours. The speed only decides how strict the verdict's
        one clock second is in real time.
        """

        def clock(low: float, high: float) -> tuple[float, float]:
            return (low * speed, high * speed)

        return cls(
            open_window=max(5.0, cases / rate) * speed,
            answer=clock(0.2, 1.0),
            step=clock(0.2, 1.0),
            handoff_deadline=3.0 * speed,
            acknowledge_within=(2.0 * speed, 3.0 * speed, 4.0 * speed),
            resolve_after=clock(0.2, 1.0),
        )

    @property
    def patience(self) -> float:
        """How long the longest story may take from its case's opening, half again.

        Past that the holder gives up and closes the case: a story that the bus
        derailed (a handoff expired while its answer was on the way, so the
        rejections never add up to ping-pong) must not keep the run waiting.
        """
        windows = self.acknowledge_within
        bounces = 4 * (self.step[1] + self.answer[1])
        escalation = sum(windows) + windows[-1] + self.resolve_after[1] + self.step[1]
        return 1.5 * (bounces + self.handoff_deadline + escalation)

    def path_for(self, default: EscalationPath) -> EscalationPath:
        """The path the case carries: the category's teams at this run's pace."""
        windows = self.acknowledge_within
        return EscalationPath(
            levels=[
                EscalationLevel(
                    level=level.level,
                    agency=level.agency,
                    team=level.team,
                    acknowledge_within=timedelta(seconds=windows[min(i, len(windows) - 1)]),
                )
                for i, level in enumerate(default.levels)
            ]
        )


@dataclass(slots=True)
class CasePlan:
    """One case's story: who opens it, whom it goes to, how its escalation is answered."""

    case_id: UUID
    category: str
    story: Story
    opener: str
    receivers: list[str]
    """In order: who each handoff request goes to."""
    response: Response = Response.PROMPT
    flag_level: int = 1
    flag_at_open: bool = True
    opens_after: float = 0.0
    path: EscalationPath | None = None
    """The case's own escalation path (None: the registry's default for its category)."""
    escalates: bool = field(init=False)

    def __post_init__(self) -> None:
        self.escalates = self.story in TRIGGERS


class Region:
    """The agencies that take part, sorted by what each may do."""

    def __init__(self, registry: AgencyRegistry, agencies: int) -> None:
        if not 2 <= agencies <= len(registry.agencies):
            raise UserError(f"--agencies must be between 2 and {len(registry.agencies)}")
        taking_part = registry.agencies[:agencies]
        self.full = [a.code for a in taking_part if set(a.emits) >= FULL_EVENTS]
        self.answering = [a.code for a in taking_part if _answers(a)]
        if len(self.full) < 2:
            raise UserError(
                f"the first {agencies} agencies of the registry include fewer than two that "
                "may open, hand off and close a case; take more with --agencies"
            )
        if not registry.categories:
            raise UserError("the registry defines no case categories to simulate")
        self.registry = registry

    def others(self, rng: random.Random, pool: list[str], *exclude: str) -> str:
        return rng.choice([code for code in pool if code not in exclude])


def _answers(agency: Agency) -> bool:
    return {"handoff-accepted", "handoff-rejected"} <= set(agency.emits)


def make_plans(
    registry: AgencyRegistry, agencies: int, cases: int, timing: Timing, seed: int
) -> list[CasePlan]:
    """Every case's story, reproducible from `seed`."""
    region = Region(registry, agencies)
    rng = random.Random(seed)  # noqa: S311 - simulated choices, not cryptography
    stories, weights = zip(*STORY_WEIGHTS.items(), strict=True)
    responses, response_weights = zip(*RESPONSE_WEIGHTS.items(), strict=True)
    plans = []
    for number in range(cases):
        story = rng.choices(stories, weights)[0]
        category = rng.choice(registry.categories)
        opener = rng.choice(region.full)
        plan = CasePlan(
            case_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            category=category.code,
            story=story,
            opener=opener,
            receivers=_receivers(rng, region, story, opener),
            opens_after=timing.open_window * number / max(1, cases),
            path=timing.path_for(category.escalation_path),
        )
        if plan.escalates:
            plan.response = rng.choices(responses, response_weights)[0]
        plan.flag_level = rng.choice((1, 1, 2))
        plan.flag_at_open = rng.random() < 0.5
        plans.append(plan)
    return plans


def _receivers(rng: random.Random, region: Region, story: Story, opener: str) -> list[str]:
    """Whom the holder asks, request by request; whoever accepts holds next."""
    full, answering = region.full, region.answering
    if story is Story.STALLED:
        return [region.others(rng, answering, opener)]
    if story is Story.BOUNCED:
        first = region.others(rng, answering, opener)
        second = region.others(rng, answering, opener, first) if len(answering) > 2 else first
        return [first, second, first]
    if story is Story.REJECTED:
        refuser = region.others(rng, answering, opener)
        return [refuser, region.others(rng, full, opener)]
    chain = [region.others(rng, full, opener)]
    if story is Story.SMOOTH and len(full) > 2 and rng.random() < 0.5:
        chain.append(region.others(rng, full, opener, chain[0]))
    return chain
