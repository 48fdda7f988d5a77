"""Replaying dead letters: what may go back on its origin topic, and what became of replays.

Only what an agency sent can be sent again, so a replay goes only to an agency
outbox, marked with `REPLAY_OF`, where the router checks it like any other
message. Planning is a pure function; `services.dead_letters.kafka` publishes.
Each refusal to replay is logged for the audit, without the dead letter's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts import topics
from contracts.envelope import CONTENT_TYPE
from services.dead_letters._audit import audit_fields
from services.dead_letters.letters import DeadLetter, Record, oldest_first
from services.runtime.errors import UserError
from services.runtime.logging import get_logger
from services.runtime.terminal import clean

REPLAY_OF = "ketenbus-replay-of"
"""Header on a replayed record: the ID of the dead letter it was replayed from."""


class NotReplayable(UserError):
    """A dead letter that must not be put back on its origin topic; the message says why."""

    def __init__(self, letter: DeadLetter, why: str) -> None:
        super().__init__(f"dead letter {letter.id} cannot be replayed: {why}")
        self.letter = letter
        self.why = why


@dataclass(frozen=True, slots=True)
class Replay:
    """A dead letter's original value and key, to be put back on its origin outbox."""

    letter: DeadLetter
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay Kafka has acknowledged: where it went."""

    replay: Replay
    partition: int
    offset: int


def plan_replay(letter: DeadLetter) -> Replay:
    """The record that replays `letter`, or NotReplayable.

    Only what an agency sent can be sent again, so only to an agency outbox,
    where the router checks it like any other message (and refuses an event id
    it already delivered as `duplicate-event-id`). A redacted dead letter lacks
    part of what was sent: only the sender can send it again.
    """
    origin = letter.origin_topic
    if origin is None:
        raise NotReplayable(letter, f"it has no {topics.DLQ_ORIGIN_TOPIC} header")
    if topics.agency_of_outbox(origin) is None:
        raise NotReplayable(letter, f"its origin {clean(origin)} is not an agency outbox")
    if letter.redacted is not None:
        raise NotReplayable(
            letter,
            f"its value is incomplete ({clean(letter.redacted)} removed, see "
            f"{topics.DLQ_REDACTED}): the sender must send the event again",
        )
    return Replay(
        letter=letter,
        topic=origin,
        key=letter.record.key,
        value=letter.record.value,
        headers=(
            (REPLAY_OF, letter.id.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ),
    )


def plan_replays(letters: Iterable[DeadLetter]) -> tuple[list[Replay], list[NotReplayable]]:
    """What can be replayed of `letters` (oldest first), and what cannot, with why."""
    plans: list[Replay] = []
    refused: list[NotReplayable] = []
    for letter in oldest_first(letters):
        try:
            plans.append(plan_replay(letter))
        except NotReplayable as exc:
            refused.append(exc)
    return plans, refused


def log_refused(refusal: NotReplayable, actor: str | None = None) -> None:
    """Log the refusal for the audit; `actor` as in `_audit.audit_fields`."""
    get_logger("ketenbus.dlq").warning(
        "dead letter replay refused", why=refusal.why, **audit_fields(refusal.letter, actor)
    )


# --- Replay history ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """One replay of a dead letter found on its origin outbox, and how the router took it."""

    record: Record
    refused_as: DeadLetter | None
    """The dead letter the replay became, None if the router has not refused it."""


def replay_history(
    letter: DeadLetter, origin_records: Iterable[Record], letters: Iterable[DeadLetter]
) -> list[ReplayEntry]:
    """The replays of `letter` among `origin_records`, oldest first, each with its refusal."""
    replays = sorted(
        (r for r in origin_records if r.header(REPLAY_OF) == letter.id),
        key=lambda r: (r.timestamp_ms, r.partition, r.offset),
    )
    letters = list(letters)
    return [
        ReplayEntry(record, next((d for d in letters if d.came_from(record)), None))
        for record in replays
    ]


def replayed_from(letter: DeadLetter, origin_records: Iterable[Record]) -> str | None:
    """The ID of the dead letter whose replay `letter` is the refusal of, if it is one."""
    for record in origin_records:
        if letter.came_from(record):
            return record.header(REPLAY_OF)
    return None
