"""The dead-letter topic for operators: read it, describe what it holds, and replay from it.

`ketenbus dlq` stands on this module. A dead letter is named by its position on
`ketenbus.dlq`, `<partition>:<offset>`, which stays valid as long as Kafka keeps
the record. Parsing, formatting and replay planning are pure functions over
`Record`s; `read_topic` and `publish_replays` are the only parts that talk to
Kafka.

Dead letters can hold personal data (a malformed event is kept as it was sent),
so what is printed about many of them at once (`render_list`, `render_counts`)
and what is logged never includes the value: only the headers the bus wrote and
the event's id and type. The value is shown only by `render_show`, for one dead
letter an operator asked for. Everything taken from a record is printed with
its control characters escaped, so a crafted message cannot drive the terminal.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from contracts import topics
from contracts.envelope import CONTENT_TYPE, EVENT_TYPE_PREFIX
from services.runtime.errors import UserError
from services.runtime.logging import get_logger
from services.runtime.settings import Settings

REPLAY_OF = "ketenbus-replay-of"
"""Header on a replayed record: the ID of the dead letter it was replayed from."""

READ_TIMEOUT = 10.0
"""Seconds to read a topic to its end before giving up."""

PREVIEW_BYTES = 64
"""How much of a value that is not JSON `show` prints, in hex."""

NO_REASON = "(none)"
"""The reason code of a record on the dead-letter topic that carries none."""

_SHOWN_TEXT = 100
"""At most this many characters of an event id or type taken from a value."""


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
    raise UserError(f"no dead letter {dlq_id.strip()} on {topics.DLQ}")


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


# --- Replay -------------------------------------------------------------------------


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


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _audit_fields(letter: DeadLetter) -> dict[str, Any]:
    """What the audit log says of a dead letter: where it came from and why, never its value."""
    return {
        "dlq_id": letter.id,
        "origin_topic": letter.origin_topic,
        "reason_code": letter.reason_code,
        "case_id": str(letter.case_id) if letter.case_id else None,
        "event_id": letter.event_id,
        "operator": _operator(),
    }


def log_refused(refusal: NotReplayable) -> None:
    get_logger("ketenbus.dlq").warning(
        "dead letter replay refused", why=refusal.why, **_audit_fields(refusal.letter)
    )


def render_replayed(done: Replayed) -> str:
    letter = done.replay.letter
    what = ", ".join(
        part
        for part in (
            f"reason {clean(letter.reason_code)}",
            f"case {letter.case_id}" if letter.case_id else "",
            f"event {letter.event_id}" if letter.event_id else "",
        )
        if part
    )
    return (
        f"replayed {letter.id} ({what}) to {clean(done.replay.topic)} "
        f"partition {done.partition} offset {done.offset}"
    )


def why_not(refusals: Sequence[NotReplayable]) -> str:
    """Why dead letters were not replayed, each reason with how many, most first."""
    why = Counter(refusal.why for refusal in refusals)
    return "; ".join(f"{count} because {reason}" for reason, count in why.most_common())


def render_refused(refusals: Sequence[NotReplayable]) -> str:
    """One line on the dead letters `--all-of` would not replay."""
    return f"not replayed: {len(refusals)} that cannot be replayed ({why_not(refusals)})"


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


# --- Formatting ----------------------------------------------------------------------


def clean(text: str) -> str:
    """`text` with every non-printable character escaped (no terminal control from a record)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _short_type(event_type: str | None) -> str:
    if event_type is None:
        return "-"
    return clean(event_type.removeprefix(EVENT_TYPE_PREFIX))


def render_list(letters: Sequence[DeadLetter]) -> str:
    """One line per dead letter, in the order given: never anything of the value but its
    event id and type."""
    if not letters:
        return "no dead letters"
    rows = [
        (
            letter.id,
            format_time(letter.time),
            clean(letter.reason_code),
            clean(letter.rejected_by or "-"),
            clean(letter.origin),
            str(letter.case_id) if letter.case_id else "-",
            clean(letter.event_id or "-"),
            _short_type(letter.event_type),
        )
        for letter in letters
    ]
    headers = ("ID", "TIME", "REASON", "BY", "ORIGIN", "CASE", "EVENT", "TYPE")
    return "\n".join(_table(headers, rows))


def summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as `dlq list --json` prints it: the headers' facts, not the value."""
    return {
        "id": letter.id,
        "partition": letter.record.partition,
        "offset": letter.record.offset,
        "time": letter.time.isoformat(),
        "reason_code": letter.reason_code,
        "reason": letter.reason,
        "rejected_by": letter.rejected_by,
        "origin_topic": letter.origin_topic,
        "origin_partition": letter.origin_partition,
        "origin_offset": letter.origin_offset,
        "case_id": str(letter.case_id) if letter.case_id else None,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "redacted": letter.redacted,
    }


def render_counts(tally: Sequence[tuple[str, int]]) -> str:
    if not tally:
        return "no dead letters"
    rows = [(clean(code), str(count)) for code, count in tally]
    rows.append(("total", str(sum(count for _, count in tally))))
    return "\n".join(_table(("REASON", "COUNT"), rows))


def _key_text(key: bytes | None) -> str:
    if key is None:
        return "(none)"
    try:
        return clean(key.decode())
    except UnicodeDecodeError:
        return f"{len(key)} bytes, not text: {key[:PREVIEW_BYTES].hex(' ')}"


def hex_preview(value: bytes) -> list[str]:
    """The first PREVIEW_BYTES of `value` in hex, 16 bytes a line, each with its offset."""
    head = value[:PREVIEW_BYTES]
    return [
        f"{start:04x}  {head[start : start + 16].hex(' ')}" for start in range(0, len(head), 16)
    ]


def render_show(
    letter: DeadLetter, history: Sequence[ReplayEntry] | None, replay_of: str | None = None
) -> str:
    """The dead letter's headers, key and value, and its replays (None: history not read)."""
    lines = [
        f"dead letter {letter.id} on {topics.DLQ}, written {format_time(letter.time)}",
    ]
    if replay_of:
        lines.append(f"the refusal of a replay of dead letter {clean(replay_of)}")
    lines += ["", "headers"]
    lines += [
        f"  {clean(name)}: {clean(value.decode(errors='replace'))}"
        for name, value in letter.record.headers
    ] or ["  (none)"]
    lines += ["", f"key: {_key_text(letter.record.key)}", ""]
    document = _json_value(letter.record.value)
    if document is not _NOT_JSON:
        pretty = json.dumps(document, indent=2, ensure_ascii=False)
        lines += ["value (JSON):", *(clean(line) for line in pretty.splitlines())]
    else:
        size = len(letter.record.value)
        shown = min(size, PREVIEW_BYTES)
        lines.append(f"value: {size} bytes, not JSON; the first {shown} in hex:")
        lines += [f"  {line}" for line in hex_preview(letter.record.value)]
    lines += ["", *render_history(letter, history)]
    return "\n".join(lines)


def render_history(letter: DeadLetter, history: Sequence[ReplayEntry] | None) -> list[str]:
    try:
        plan_replay(letter)
    except NotReplayable as exc:
        return [f"replays: none ({exc.why})"]
    if history is None:
        return ["replays: unknown (the origin topic could not be read)"]
    if not history:
        return ["replays: none"]
    lines = [f"replays: {len(history)}"]
    for entry in history:
        record = entry.record
        when = format_time(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC))
        outcome = (
            f"refused again: {clean(entry.refused_as.reason_code)} "
            f"(dead letter {entry.refused_as.id})"
            if entry.refused_as
            else "not refused (delivered, or not routed yet)"
        )
        lines.append(
            f"  {when}  to {clean(record.topic)} partition {record.partition} "
            f"offset {record.offset}: {outcome}"
        )
    return lines


def show_json(
    letter: DeadLetter, history: Sequence[ReplayEntry] | None, replay_of: str | None = None
) -> dict[str, Any]:
    """A dead letter as `dlq show --json` prints it: the summary, headers, key, value, replays."""
    shown: dict[str, Any] = {
        **summary(letter),
        "headers": [
            {"name": name, "value": value.decode(errors="replace")}
            for name, value in letter.record.headers
        ],
        "key": None if letter.record.key is None else letter.record.key.decode(errors="replace"),
        "replay_of": replay_of,
    }
    document = _json_value(letter.record.value)
    if document is not _NOT_JSON:
        shown["value"] = document
    else:
        shown["value_bytes"] = len(letter.record.value)
        shown["value_hex_preview"] = letter.record.value[:PREVIEW_BYTES].hex()
    shown["replays"] = (
        None
        if history is None
        else [
            {
                "topic": entry.record.topic,
                "partition": entry.record.partition,
                "offset": entry.record.offset,
                "time": datetime.fromtimestamp(entry.record.timestamp_ms / 1000, UTC).isoformat(),
                "refused_as": entry.refused_as.id if entry.refused_as else None,
                "refused_reason_code": entry.refused_as.reason_code if entry.refused_as else None,
            }
            for entry in history
        ]
    )
    return shown


_NOT_JSON = object()


def _json_value(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _NOT_JSON


def _json_object(value: bytes) -> dict[str, Any] | None:
    document = _json_value(value)
    return document if isinstance(document, dict) else None


def _text_field(document: dict[str, Any] | None, name: str) -> str | None:
    value = document.get(name) if document is not None else None
    return value[:_SHOWN_TEXT] if isinstance(value, str) else None


def _integer(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


# --- Kafka ---------------------------------------------------------------------------


def bootstrap_of(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"


def _unreachable(bootstrap: str) -> UserError:
    return UserError(f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?")


async def read_topic(
    settings: Settings, topic: str, *, timeout: float = READ_TIMEOUT
) -> list[Record]:
    """Every record of `topic`, from the beginning of each partition to its end as of now.

    No consumer group, nothing committed: reading changes nothing on the bus.
    The end is the high-watermark the first fetch of each partition reports
    (the embedded broker's end offsets can lag behind it). Connecting and
    reading are each bounded by `timeout`.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from services.runtime.kafka import client_security

    bootstrap = bootstrap_of(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_security(settings),
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout)
    except Exception:  # noqa: BLE001 - any failure to connect is reported in one line
        await consumer.stop()
        raise _unreachable(bootstrap) from None
    found: list[Record] = []
    try:
        await asyncio.wait_for(_read_to_end(consumer, topic, bootstrap, found), timeout)
    except TimeoutError:
        raise UserError(
            f"{topic} not read to its end in {timeout:g} s ({len(found)} records read)"
        ) from None
    except KafkaError as exc:
        raise UserError(f"cannot read {topic} from {bootstrap}: {exc}") from None
    finally:
        await consumer.stop()
    return found


async def _read_to_end(consumer: Any, topic: str, bootstrap: str, found: list[Record]) -> None:
    """Append every record of `topic` to `found`, up to the first high-watermark of each
    partition (`found` is filled as it goes, so a caller that times out knows how far)."""
    from aiokafka import TopicPartition

    if topic not in await consumer.topics():
        raise UserError(f"topic {topic} does not exist on {bootstrap}")
    numbers = sorted(consumer.partitions_for_topic(topic) or ())
    partitions = [TopicPartition(topic, number) for number in numbers]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends: dict[Any, int] = {}
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        found += [Record.of(r) for records in batches.values() for r in records]
        for partition in partitions:
            mark = consumer.highwater(partition)
            if partition not in ends and mark is not None:
                ends[partition] = mark
        if len(ends) == len(partitions) and all(
            [await consumer.position(p) >= ends[p] for p in partitions]
        ):
            return


async def read_dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every dead letter on `ketenbus.dlq` now, oldest first."""
    return oldest_first(parse_dead_letter(r) for r in await read_topic(settings, topics.DLQ))


async def publish_replays(
    settings: Settings,
    plans: Sequence[Replay],
    on_replayed: Callable[[Replayed], None],
    *,
    timeout: float = 15.0,
) -> list[Replayed]:
    """Produce each replay in order, log it for the audit, and report it once Kafka has it.

    Each is awaited before the next, so a failure leaves the ones before it
    replayed and reported, and nothing after it sent.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from services.runtime.kafka import client_security

    log = get_logger("ketenbus.dlq")
    bootstrap = bootstrap_of(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=int(timeout * 1000),
        **client_security(settings),
    )
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except Exception:  # noqa: BLE001 - any failure to connect is reported in one line
        await producer.stop()
        raise _unreachable(bootstrap) from None
    done: list[Replayed] = []
    try:
        for plan in plans:
            try:
                meta = await asyncio.wait_for(
                    producer.send_and_wait(
                        plan.topic, plan.value, key=plan.key, headers=list(plan.headers)
                    ),
                    timeout,
                )
            except (KafkaError, TimeoutError) as exc:
                raise UserError(
                    f"cannot replay dead letter {plan.letter.id} to {clean(plan.topic)}: "
                    f"{str(exc) or type(exc).__name__} ({len(done)} replayed before it)"
                ) from None
            replayed = Replayed(plan, meta.partition, meta.offset)
            log.info(
                "dead letter replayed",
                **_audit_fields(plan.letter),
                replayed_to_partition=meta.partition,
                replayed_to_offset=meta.offset,
            )
            done.append(replayed)
            on_replayed(replayed)
    finally:
        await producer.stop()
    return done
