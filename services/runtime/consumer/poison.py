"""A batch that keeps failing: wait out what is transient, set aside what is poison.

A consumer's batch fails for one of two kinds of reasons. Transient ones (the
database or the broker unreachable, a lock timeout) pass: the batch comes again
after a pause, as often as it takes, and nothing is skipped. Any other failure
may be one message the code cannot process (a poison message): retried forever
it would stop its partition for good, and retried as a batch it would stop
every partition in the batch. So such a failure is narrowed to partitions:

- each partition's records of the batch are processed on their own, and those
  that go through are committed in this very round: one bad record never holds
  another partition (no `backoff` pause, no redelivery);
- a partition whose records still fail is seeked back to its first record and
  paused alone, for a pause that doubles with its attempts (`Backoff`), while
  the other partitions flow on;
- attempts are counted per record (topic, partition, offset), one per round in
  which it was delivered and failed, however the batches around it are cut. Once
  a record reaches `max_attempts`, its partition's records are processed one by
  one; one that still fails is dead-lettered with the reason and its attempts,
  and the partition moves on. Records before and after it are processed once; a
  later record of the poisoned case meets the case as the dead-lettered one left it.

An outage met while doing so stops it: what was done stays done (and is
committed), the rest is rewound and comes again after the pause. Without the
aiokafka consumer to seek and pause (`run` without one), a failing batch is
raised, after a pause, to come again whole, and counted the same way.

Attempts are counted in memory, for at most `TRACKED` records (the oldest are
forgotten first): after a restart, or once forgotten, a record gets
`max_attempts` more, which only delays the dead letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts import topics
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.catch_up import rewind
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.poison")

ATTEMPTS_HEADER = "ketenbus-attempts"
"""On a dead letter of a message that failed processing: how often it was tried."""

TRACKED = 100_000
"""Records whose attempts are remembered at most; a record is remembered only while it fails."""


class Record(Protocol):
    """What is needed of a consumed record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


DeadLetter = Callable[[Record, dict[str, str]], Awaitable[None]]
"""Produce `record` to the dead-letter topic with these headers; return once acked."""

Process = Callable[[Sequence[Any]], Awaitable[object]]


def transient(exc: BaseException) -> bool:
    """Whether `exc` is an outage that passes, rather than something wrong with the batch."""
    if isinstance(exc, OperationalError | PoolTimeout | KafkaError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True)
class _Outage:
    """An outage met part-way: `left` are the records not done."""

    error: Exception
    left: Sequence[Any]


class PoisonGuard:
    """Runs one consumer's batches: retries with backoff, isolates a poison message."""

    def __init__(
        self, service: str, max_attempts: int, dead_letter: DeadLetter, backoff: Backoff
    ) -> None:
        self.service = service
        self.max_attempts = max_attempts
        self.dead_letter = dead_letter
        self.backoff = backoff
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._held: dict[TopicPartition, asyncio.TimerHandle] = {}

    def tracked(self) -> int:
        """How many records' attempts are remembered."""
        return len(self._attempts)

    async def run(self, records: Sequence[Any], process: Process, consumer: object = None) -> None:
        """`process(records)`, failures handled as the module says.

        `consumer`: the `AIOKafkaConsumer` the records were read with (a FastStream
        message's `consumer`), to narrow a failure to partitions. It raises only on
        an outage of the whole batch, after a pause, to have it come again; without
        the consumer it also raises, after a pause, a failure to retry.
        """
        suspect = bool(self._attempts) and any(_position(r) in self._attempts for r in records)
        if not (suspect and isinstance(consumer, AIOKafkaConsumer)):
            try:
                await process(records)
            except Exception as exc:  # noqa: BLE001 - any failure that is no outage counts
                if not records or transient(exc):
                    await self._pause_and_raise(records, exc)
                if not isinstance(consumer, AIOKafkaConsumer):
                    await self._whole(records, process, exc)
                elif not await self._by_partition(consumer, records, process, exc):
                    return
            else:
                self._forget(records)
        elif not await self._by_partition(consumer, records, process, None):
            return  # an outage: nothing past it was done
        self.backoff.succeeded()

    async def _whole(self, records: Sequence[Any], process: Process, exc: Exception) -> None:
        attempts = self._count(records)
        if attempts < self.max_attempts:
            await self._pause_and_raise(records, exc, attempts=attempts)
        outage = await self._one_by_one(records, process)
        if outage is not None:
            raise outage.error  # it began meanwhile: the batch comes again, nothing skipped

    async def _by_partition(
        self,
        consumer: AIOKafkaConsumer,
        records: Sequence[Any],
        process: Process,
        failure: Exception | None,
    ) -> bool:
        """Each partition's records on their own; False after an outage (then paused)."""
        groups = _partitions(records)
        known = failure if len(groups) == 1 else None  # one partition: the batch was its try
        for index, (tp, group) in enumerate(groups):
            outage = await self._partition(consumer, tp, group, process, known)
            if outage is not None:
                left = [*outage.left, *(r for _, later in groups[index + 1 :] for r in later)]
                rewind(consumer, left)
                pause = self.backoff.next_pause()
                self._log_retry(left, outage.error, None, pause)
                await asyncio.sleep(pause)
                return False
        return True

    async def _partition(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: Sequence[Any],
        process: Process,
        failure: Exception | None,
    ) -> _Outage | None:
        if failure is None:
            try:
                await process(records)
            except Exception as exc:  # noqa: BLE001 - any failure that is no outage counts
                failure = exc
            else:
                self._forget(records)
                return None
        if transient(failure):
            return _Outage(failure, records)
        attempts = self._count(records)
        if attempts >= self.max_attempts:
            return await self._one_by_one(records, process)
        pause = _pause_after(attempts)
        self._log_retry(records, failure, attempts, pause)
        self._hold(consumer, tp, records[0].offset, pause)
        return None

    def _hold(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, pause: float
    ) -> None:
        """Seek `tp` back to `offset` and fetch nothing of it for `pause` seconds."""
        if tp not in consumer.assignment():
            return  # revoked meanwhile: its new owner reads it from the last commit
        consumer.seek(tp, offset)
        consumer.pause(tp)
        previous = self._held.pop(tp, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._held[tp] = loop.call_later(pause, self._release, consumer, tp)

    def _release(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        self._held.pop(tp, None)
        if tp in consumer.assignment():  # not a partition revoked meanwhile, nor a stopped consumer
            consumer.resume(tp)

    async def _one_by_one(self, records: Sequence[Any], process: Process) -> _Outage | None:
        for index, record in enumerate(records):
            try:
                await process([record])
            except Exception as exc:
                if transient(exc):
                    return _Outage(exc, records[index:])
                attempts = self._attempts.get(_position(record), self.max_attempts)
                try:
                    await self.dead_letter(record, self._headers(record, exc, attempts))
                except Exception as unsent:
                    if transient(unsent):  # the broker went away: this record comes again
                        return _Outage(unsent, records[index:])
                    raise
                log.exception(
                    "message set aside after repeated failures",
                    service=self.service,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    attempts=attempts,
                    error=type(exc).__name__,
                )
            self._attempts.pop(_position(record), None)
        return None

    def _count(self, records: Sequence[Any]) -> int:
        """One more attempt for each of `records`; the most any of them has had."""
        most = 0
        for record in records:
            position = _position(record)
            attempts = self._attempts.pop(position, 0) + 1
            self._attempts[position] = attempts  # to the end: the oldest are forgotten first
            most = max(most, attempts)
        while len(self._attempts) > TRACKED:
            del self._attempts[next(iter(self._attempts))]
        return most

    def _forget(self, records: Sequence[Any]) -> None:
        if self._attempts:
            for record in records:
                self._attempts.pop(_position(record), None)

    def _headers(self, record: Record, exc: Exception, attempts: int) -> dict[str, str]:
        reason = f"{self.service} could not process it after {attempts} attempts: "
        return {
            **dead_letter_headers(
                record, self.service, "processing-failed", reason + type(exc).__name__
            ),
            ATTEMPTS_HEADER: str(attempts),
        }

    async def _pause_and_raise(
        self, records: Sequence[Any], exc: Exception, attempts: int | None = None
    ) -> NoReturn:
        pause = self.backoff.next_pause()
        self._log_retry(records, exc, attempts, pause)
        await asyncio.sleep(pause)
        raise exc

    def _log_retry(
        self, records: Sequence[Any], exc: Exception, attempts: int | None, pause: float
    ) -> None:
        log.warning(
            "batch failed, it will come again",
            exc_info=attempts is not None,  # an outage needs no traceback; anything else does
            service=self.service,
            records=len(records),
            partitions=sorted({f"{r.topic}:{r.partition}" for r in records}),
            error=type(exc).__name__,
            transient=attempts is None,
            attempts=attempts,
            retry_in=pause,
        )


def dead_letter_with(broker: Any) -> DeadLetter:
    """A `DeadLetter` producing with a FastStream Kafka broker, waiting for the ack."""

    async def produce(record: Record, headers: dict[str, str]) -> None:
        await broker.publish(record.value or b"", topics.DLQ, key=record.key, headers=headers)

    return produce


def dead_letter_headers(record: Record, service: str, code: str, reason: str) -> dict[str, str]:
    """The headers of `record`'s dead letter: why `service` set it aside, and where from.

    The record's own headers travel with it (its correlation id, a replay's mark
    `ketenbus-replay-of`, what the sender set), but those a dead letter sets anew.
    """
    skipped = topics.DLQ_HEADERS | {ATTEMPTS_HEADER}
    own = {
        name: (value or b"").decode(errors="backslashreplace")
        for name, value in record.headers
        if name not in skipped
    }
    return {
        **own,
        topics.DLQ_REASON: reason,
        topics.DLQ_REASON_CODE: code,
        topics.DLQ_ORIGIN_TOPIC: record.topic,
        topics.DLQ_ORIGIN_PARTITION: str(record.partition),
        topics.DLQ_ORIGIN_OFFSET: str(record.offset),
        topics.DLQ_REJECTED_BY: service,
    }


def _partitions(records: Sequence[Any]) -> list[tuple[TopicPartition, list[Any]]]:
    groups: dict[TopicPartition, list[Any]] = {}
    for record in records:
        groups.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
    return list(groups.items())


def _pause_after(attempts: int) -> float:
    """The pause after a partition's `attempts`-th failure: as `Backoff` after as many."""
    backoff = Backoff()
    backoff.failures = attempts - 1
    return backoff.next_pause()


def _position(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
