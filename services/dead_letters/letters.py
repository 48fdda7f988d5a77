"""Dead letters as read from `ketenbus.dlq`: what the bus wrote about each, and finding them.

A dead letter is named by its position on `ketenbus.dlq`, `<partition>:<offset>`,
which stays valid as long as Kafka keeps the record. Parsing is a pure function
over a `Record` and never fails: a record without the bus's headers is a dead
letter with no reason and no origin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from contracts import topics
from services.dead_letters._text import json_value
from services.runtime.errors import UserError

NO_REASON = "(none)"
"""The reason code of a record on the dead-letter topic that carries none."""

REPLAY_OF = "ketenbus-replay-of"
"""Header on a replayed record: the ID of the dead letter it was replayed from. The router
keeps a refused record's own headers on its dead letter, so the refusal of a replay carries
it too."""

_SHOWN_TEXT = 100
"""At most this many characters of an event id or type taken from a value."""


class NoSuchDeadLetter(UserError):
    """A dead letter ID that is not on the topic (now: Kafka may have deleted it)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as read: where it is, when it was written, and what it holds."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> Record:
        """From an aiokafka ConsumerRecord."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value or b"",
            headers=tuple((name, bytes(value or b"")) for name, value in record.headers),
        )

    def header(self, name: str) -> str | None:
        """The last value of header `name` as text, None if the record has none."""
        found = [value for key, value in self.headers if key == name]
        return found[-1].decode(errors="replace") if found else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record of `ketenbus.dlq` with what the bus wrote about it in its headers."""

    record: Record
    reason_code: str
    reason: str | None
    rejected_by: str | None
    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    redacted: str | None
    """The part removed from the value (personal data sent in clear), None if complete."""
    case_id: UUID | None
    """The record key when it is a case id; any other key is not shown in listings."""
    event_id: str | None
    event_type: str | None
    replay_of: str | None = None
    """The `ketenbus-replay-of` the refused record carried (kept by the router with the
    record's other headers): the dead letter whose replay this is the refusal of."""

    @property
    def id(self) -> str:
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.record.timestamp_ms / 1000, UTC)

    @property
    def origin(self) -> str:
        """Where the refused record was: `topic@partition:offset`, `-` where unknown."""
        topic = self.origin_topic or "-"
        if self.origin_partition is None or self.origin_offset is None:
            return topic
        return f"{topic}@{self.origin_partition}:{self.origin_offset}"

    def came_from(self, record: Record) -> bool:
        """Whether this dead letter is the refusal of `record`."""
        return (self.origin_topic, self.origin_partition, self.origin_offset) == (
            record.topic,
            record.partition,
            record.offset,
        )


def parse_dead_letter(record: Record) -> DeadLetter:
    """What the headers and the value of a dead-letter record say; never fails."""
    document = _json_object(record.value)
    return DeadLetter(
        record=record,
        reason_code=record.header(topics.DLQ_REASON_CODE) or NO_REASON,
        reason=record.header(topics.DLQ_REASON),
        rejected_by=record.header(topics.DLQ_REJECTED_BY),
        origin_topic=record.header(topics.DLQ_ORIGIN_TOPIC),
        origin_partition=_integer(record.header(topics.DLQ_ORIGIN_PARTITION)),
        origin_offset=_integer(record.header(topics.DLQ_ORIGIN_OFFSET)),
        redacted=record.header(topics.DLQ_REDACTED),
        case_id=case_of_key(record.key),
        event_id=_text_field(document, "id"),
        event_type=_text_field(document, "type"),
        replay_of=_replay_id(record.header(REPLAY_OF)),
    )


def parse_id(text: str) -> tuple[int, int]:
    """The partition and offset of a dead letter's ID `<partition>:<offset>`."""
    partition, sep, offset = text.strip().partition(":")
    if sep and partition.isdigit() and offset.isdigit():
        return int(partition), int(offset)
    raise UserError(f"{text!r} is not a dead letter ID (PARTITION:OFFSET, as `dlq list` shows)")


def case_of_key(key: bytes | None) -> UUID | None:
    """The case id a key holds (as text, or as a JSON string), else None."""
    if not key:
        return None
    try:
        text = key.decode().strip()
        return UUID(text.removeprefix('"').removesuffix('"'))
    except (UnicodeDecodeError, ValueError):
        return None


def find(letters: Iterable[DeadLetter], dlq_id: str) -> DeadLetter:
    """The dead letter named `dlq_id`, or a one-line error."""
    position = parse_id(dlq_id)
    for letter in letters:
        if (letter.record.partition, letter.record.offset) == position:
            return letter
    raise NoSuchDeadLetter(f"no dead letter {dlq_id.strip()} on {topics.DLQ}")


def oldest_first(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    return sorted(
        letters, key=lambda d: (d.record.timestamp_ms, d.record.partition, d.record.offset)
    )


def with_reason(letters: Iterable[DeadLetter], reason_code: str | None) -> list[DeadLetter]:
    """The dead letters with `reason_code` (all of them for None), oldest first."""
    return oldest_first(d for d in letters if reason_code is None or d.reason_code == reason_code)


def counts(letters: Iterable[DeadLetter]) -> list[tuple[str, int]]:
    """Dead letters by reason code, most first (ties by code)."""
    tally = Counter(letter.reason_code for letter in letters)
    return sorted(tally.items(), key=lambda item: (-item[1], item[0]))


def _json_object(value: bytes) -> dict[str, Any] | None:
    document = json_value(value)
    return document if isinstance(document, dict) else None


def _text_field(document: dict[str, Any] | None, name: str) -> str | None:
    value = document.get(name) if document is not None else None
    return value[:_SHOWN_TEXT] if isinstance(value, str) else None


def _replay_id(text: str | None) -> str | None:
    """A `ketenbus-replay-of` value that is a dead letter ID, as written; else None."""
    if text is None:
        return None
    try:
        parse_id(text)
    except UserError:
        return None
    return text.strip()


def _integer(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None
