"""Replaying dead letters: what may go back on its origin topic, and what became of replays.

Only what an agency sent can be sent again, so a replay goes only to an agency
outbox, marked with `REPLAY_OF`, where the router checks it like any other
message. Planning is a pure function; `services.dead_letters.kafka` publishes.
Each refusal to replay is logged for the audit, without the dead letter's value.

A replay cannot loop. A replay sends the dead letter's bytes unchanged, so a
refusal decided by those bytes alone (`FUTILE`) comes back as a new dead letter
on every replay; and the refusal of a replay is itself a dead letter, whose
replay would be a replay of a replay. Both are replayed only when the operator
confirms one by ID (`replay_caution`), never by reason in bulk (`plan_replays`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from contracts import topics
from contracts.envelope import CONTENT_TYPE, MAX_EVENT_BYTES
from services.dead_letters._audit import audit_fields
from services.dead_letters.letters import REPLAY_OF, DeadLetter, Record, oldest_first
from services.runtime.errors import UserError
from services.runtime.observability.logging import get_logger
from services.runtime.text.terminal import clean

FUTILE: Mapping[str, str] = {
    "malformed-json": "its value is not a JSON event object",
    "oversize": f"its value is more than the {MAX_EVENT_BYTES}-byte maximum",
    "tombstone": "it has no value: there is no event to send again",
    "nul-character": "a text in it holds a NUL character",
    "unsigned": "its event is not signed, and only its sender can sign it",
    "bad-signature": "its signature does not verify, and only its sender can sign it again",
    "foreign-key": "it is signed with another agency's key, and only its sender can sign it",
    "forged-source": "its source is another agency than the outbox it is replayed to",
    "wrong-key": "its message key is not its case id, and a replay keeps the key",
    "quoted-key": "its message key is the case id quoted as JSON, and a replay keeps the key",
    "duplicate-event-id": "its event id was delivered already, and an event id is delivered once",
}
"""Reason codes a replay cannot cure, with why: the refusal is decided by the bytes a replay
sends unchanged (key and value), whatever the registry or the bus's state, or, for
`duplicate-event-id`, by the router's permanent record of delivered event ids. A refusal
that a change on the bus can cure (a registry entry or key: `unknown-agency`,
`unknown-source`, `unknown-key`; holder rights: `not-permitted`; a new contract version:
`unknown-type`, `invalid-envelope`, `invalid-data`; `processing-failed`) is not here, nor
`malformed-headers`: a replay carries only its own headers, not the sender's."""

REPLAY_OF_REPLAY = "it is the refusal of an earlier replay"
"""Why `--all-of` holds a dead letter back (the ID of that replay's dead letter aside)."""


class NotReplayable(UserError):
    """A dead letter that must not be put back on its origin topic; the message says why."""

    def __init__(self, letter: DeadLetter, why: str) -> None:
        self.letter = letter
        self.why = why
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        return f"dead letter {self.letter.id} cannot be replayed: {self.why}"


class NeedsConfirmation(NotReplayable):
    """A dead letter that is replayed only when the operator confirms it, one by ID: a replay
    of a replay, or one that cannot succeed (`replay_caution`); the message says why, and
    `how` how to confirm."""

    def __init__(self, letter: DeadLetter, why: str, how: str = "") -> None:
        self.how = how
        super().__init__(letter, why)

    def _sentence(self) -> str:
        how = f"; {self.how}" if self.how else ""
        return f"dead letter {self.letter.id} not replayed without confirmation: {self.why}{how}"


def futile(reason_code: str) -> str | None:
    """Why a replay of a dead letter with `reason_code` is refused again, or None if it need
    not be."""
    why = FUTILE.get(reason_code)
    if why is None:
        return None
    return f"a replay sends the same bytes, so the router refuses it again as {reason_code} ({why})"


def replay_caution(letter: DeadLetter, replay_of: str | None = None) -> str | None:
    """Why replaying `letter` must be confirmed first, or None: it cannot succeed (`FUTILE`),
    or it is the refusal of a replay of dead letter `replay_of` (see `kafka.replay_marks`)."""
    why = futile(letter.reason_code)
    if why is not None:
        return why
    replay_of = replay_of or letter.replay_of
    if replay_of:
        return (
            f"{REPLAY_OF_REPLAY} (of dead letter {clean(replay_of)}): replaying it would "
            "replay a replay; replay the original instead"
        )
    return None


@dataclass(frozen=True, slots=True)
class Replay:
    """A dead letter's original value and key, to be put back on its origin outbox."""

    letter: DeadLetter
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    despite: str | None = None
    """The caution the operator confirmed the replay despite (`replay_caution`), for the
    audit; None when there was none."""

    def confirmed(self, caution: str | None) -> Replay:
        """This replay, confirmed by the operator despite `caution`."""
        return replace(self, despite=caution)


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


def plan_replays(
    letters: Iterable[DeadLetter],
    replay_marks: Mapping[str, str | None] | None = None,
    *,
    force: bool = False,
) -> tuple[list[Replay], list[NotReplayable]]:
    """What can be replayed of `letters` (oldest first), and what cannot, with why.

    In bulk, a dead letter a replay cannot cure (`FUTILE`) is never replayed, and the
    refusal of a replay (named by its own `replay_of`, or by `replay_marks`: dead letter ID
    to the ID of the dead letter whose replay it refused) only with `force`; both are
    NeedsConfirmation among the refused.
    """
    marks = replay_marks or {}
    plans: list[Replay] = []
    refused: list[NotReplayable] = []
    for letter in oldest_first(letters):
        try:
            plan = plan_replay(letter)
        except NotReplayable as exc:
            refused.append(exc)
            continue
        why = futile(letter.reason_code)
        if why is not None:
            refused.append(NeedsConfirmation(letter, why))
        elif letter.replay_of or marks.get(letter.id):
            if force:
                plans.append(plan.confirmed(replay_caution(letter, marks.get(letter.id))))
            else:
                refused.append(NeedsConfirmation(letter, REPLAY_OF_REPLAY))
        else:
            plans.append(plan)
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
    """The ID of the dead letter whose replay `letter` is the refusal of, if it is one.

    Its own `replay_of` (the refused record's header, kept by the router), else that
    header of the refused record among `origin_records`.
    """
    if letter.replay_of:
        return letter.replay_of
    for record in origin_records:
        if letter.came_from(record):
            return record.header(REPLAY_OF)
    return None
