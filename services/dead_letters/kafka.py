"""The only part of `services.dead_letters` that talks to Kafka: reading topics, publishing replays.

Reading uses no consumer group and commits nothing, so looking changes nothing
on the bus. Each replay is logged for the audit (without its value) once Kafka
has acknowledged it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from contracts import topics
from services.dead_letters._audit import audit_fields
from services.dead_letters.letters import (
    REPLAY_OF,
    DeadLetter,
    Record,
    find,
    oldest_first,
    parse_dead_letter,
    parse_id,
)
from services.dead_letters.replay import (
    Replay,
    Replayed,
    ReplayEntry,
    replay_history,
    replayed_from,
)
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.observability.logging import get_logger
from services.runtime.text.terminal import clean

READ_TIMEOUT = 10.0
"""Seconds to read a topic to its end before giving up."""

Position = tuple[str, int, int]
"""Where a record is: topic, partition, offset."""


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
    from aiokafka.errors import KafkaError

    bootstrap = bootstrap_of(settings)
    consumer = await _reader(settings, bootstrap, timeout)
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


async def _reader(settings: Settings, bootstrap: str, timeout: float) -> Any:
    """A started consumer of no group that commits nothing; a UserError if it cannot connect
    within `timeout`."""
    from aiokafka import AIOKafkaConsumer

    from services.runtime.kafka.clients import client_security

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
    return consumer


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


async def read_at(
    settings: Settings, positions: Iterable[Position], *, timeout: float = READ_TIMEOUT
) -> dict[Position, Record]:
    """The records at `positions` that are on their topics now (a position on no topic, past
    a partition's end, or deleted by retention has none).

    Each partition is read from the first offset asked for to the last, no further; no
    consumer group, nothing committed. Connecting and reading are each bounded by
    `timeout`; a failure is a UserError.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    wanted: dict[Any, set[int]] = {}
    for topic, partition, offset in positions:
        wanted.setdefault(TopicPartition(topic, partition), set()).add(offset)
    if not wanted:
        return {}
    bootstrap = bootstrap_of(settings)
    consumer = await _reader(settings, bootstrap, timeout)
    found: dict[Position, Record] = {}
    try:
        await asyncio.wait_for(_read_offsets(consumer, wanted, found), timeout)
    except TimeoutError:
        raise UserError(f"records not read in {timeout:g} s ({len(found)} read)") from None
    except KafkaError as exc:
        raise UserError(f"cannot read records from {bootstrap}: {exc}") from None
    finally:
        await consumer.stop()
    return found


async def _read_offsets(
    consumer: Any, wanted: dict[Any, set[int]], found: dict[Position, Record]
) -> None:
    """Put the records at the `wanted` offsets of each partition in `found`."""
    existing = await consumer.topics()
    wanted = {
        tp: offsets
        for tp, offsets in wanted.items()
        if tp.topic in existing and tp.partition in (consumer.partitions_for_topic(tp.topic) or ())
    }
    if not wanted:
        return
    consumer.assign(list(wanted))
    for tp, offsets in wanted.items():
        consumer.seek(tp, min(offsets))
    reading = set(wanted)
    while reading:
        batches = await consumer.getmany(*reading, timeout_ms=100)
        for tp, records in batches.items():
            for record in records:
                if record.offset in wanted[tp]:
                    found[(tp.topic, tp.partition, record.offset)] = Record.of(record)
        for tp in list(reading):
            position = await consumer.position(tp)
            end = consumer.highwater(tp)
            if position > max(wanted[tp]) or (end is not None and position >= end):
                reading.discard(tp)
                consumer.pause(tp)


async def replay_marks(settings: Settings, letters: Iterable[DeadLetter]) -> dict[str, str | None]:
    """For each dead letter, the ID of the dead letter whose replay it is the refusal of, or
    None: its own `ketenbus-replay-of` (the router keeps the refused record's headers on its
    dead letter), else that header of the refused record on its origin outbox.

    Dead letters written before the router kept the sender's headers carry no mark, so
    their refused records are read; one that cannot be read (deleted by retention, or an
    outbox the caller may not read) counts as no replay.
    """
    letters = list(letters)
    marks = {letter.id: letter.replay_of for letter in letters}
    ask: dict[str, Position] = {}
    for letter in letters:
        position = _outbox_origin(letter)
        if letter.replay_of is None and position is not None:
            ask[letter.id] = position
    if not ask:
        return marks
    try:
        records = await read_at(settings, ask.values())
    except UserError:
        return marks
    for dlq_id, position in ask.items():
        record = records.get(position)
        marks[dlq_id] = record.header(REPLAY_OF) if record is not None else None
    return marks


def _outbox_origin(letter: DeadLetter) -> Position | None:
    """Where the record `letter` refused is, if on an agency outbox."""
    topic, partition, offset = letter.origin_topic, letter.origin_partition, letter.origin_offset
    if topic is None or partition is None or offset is None:
        return None
    return (topic, partition, offset) if topics.agency_of_outbox(topic) is not None else None


async def read_dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every dead letter on `ketenbus.dlq` now, oldest first."""
    return oldest_first(parse_dead_letter(r) for r in await read_topic(settings, topics.DLQ))


async def read_with_history(
    settings: Settings, dlq_id: str
) -> tuple[DeadLetter, list[ReplayEntry] | None, str | None]:
    """One dead letter, its replays and the dead letter it is the refusal of a replay of.

    The history is None when the dead letter did not come from an agency outbox
    or its outbox cannot be read: the dead letter itself is what was asked for.
    A malformed ID or one not on the topic is a UserError.
    """
    parse_id(dlq_id)  # a malformed ID fails before the topic is read
    letters = await read_dead_letters(settings)
    letter = find(letters, dlq_id)
    origin = letter.origin_topic
    if origin is None or topics.agency_of_outbox(origin) is None:
        return letter, None, letter.replay_of
    try:
        origin_records = await read_topic(settings, origin)
    except UserError:
        # The dead letter itself is read; its history is extra and may be unreachable.
        return letter, None, letter.replay_of
    return (
        letter,
        replay_history(letter, origin_records, letters),
        replayed_from(letter, origin_records),
    )


async def publish_replays(
    settings: Settings,
    plans: Sequence[Replay],
    on_replayed: Callable[[Replayed], None],
    *,
    timeout: float = 15.0,
    actor: str | None = None,
) -> list[Replayed]:
    """Produce each replay in order, log it for the audit, and report it once Kafka has it.

    Each is awaited before the next, so a failure leaves the ones before it
    replayed and reported, and nothing after it sent. `actor`: who replays, for
    the audit (None: the login running the process).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from services.runtime.kafka.clients import client_security

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
            confirmed = {} if plan.despite is None else {"confirmed_despite": plan.despite}
            log.info(
                "dead letter replayed",
                **audit_fields(plan.letter, actor),
                replayed_to_partition=meta.partition,
                replayed_to_offset=meta.offset,
                **confirmed,
            )
            done.append(replayed)
            on_replayed(replayed)
    finally:
        await producer.stop()
    return done
