"""A batch that keeps failing: wait out what is transient, set aside what is poison.

A consumer's batch fails for one of two kinds of reasons. Transient ones (the
database or the broker unreachable, a lock timeout) pass: the batch comes again
after a pause, as often as it takes, and nothing is skipped. Any other failure
may be one message the code cannot process (a poison message): retried forever
it would stop its partition for good. So after `max_attempts` such failures of
the same batch, its records are processed one by one; one that still fails is
dead-lettered with the reason and the attempt count, and the partition moves
on. Records of other cases in the batch are processed as usual; a later record
of the poisoned case meets the case as the dead-lettered one left it.

Attempts are counted in memory: after a restart a batch gets `max_attempts`
more, which only delays the dead letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, Protocol

from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts import topics
from services.runtime.backoff import Backoff
from services.runtime.logging import get_logger

log = get_logger("ketenbus.poison")

ATTEMPTS_HEADER = "ketenbus-attempts"
"""On a dead letter of a message that failed processing: how often it was tried."""


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


DeadLetter = Callable[[Record, dict[str, str]], Awaitable[None]]
"""Produce `record` to the dead-letter topic with these headers; return once acked."""


def transient(exc: BaseException) -> bool:
    """Whether `exc` is an outage that passes, rather than something wrong with the batch."""
    if isinstance(exc, OperationalError | PoolTimeout | KafkaError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


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

    async def run(
        self, records: Sequence[Any], process: Callable[[Sequence[Any]], Awaitable[object]]
    ) -> None:
        """`process(records)`; raise (after a pause) to have the batch come again."""
        try:
            await process(records)
        except Exception as exc:  # noqa: BLE001 - any failure that is no outage counts as an attempt
            if not records or transient(exc):
                await self._pause_and_raise(records, exc)
            first = _position(records[0])
            attempts = self._attempts.get(first, 0) + 1
            self._attempts[first] = attempts
            if attempts < self.max_attempts:
                await self._pause_and_raise(records, exc, attempts=attempts)
            del self._attempts[first]
            await self._one_by_one(records, process, attempts)
        self.backoff.succeeded()

    async def _one_by_one(
        self,
        records: Sequence[Any],
        process: Callable[[Sequence[Any]], Awaitable[object]],
        attempts: int,
    ) -> None:
        for record in records:
            try:
                await process([record])
            except Exception as exc:
                if transient(exc):
                    raise  # the outage began meanwhile: the batch comes again, nothing skipped
                await self.dead_letter(record, self._headers(record, exc, attempts))
                log.exception(
                    "message set aside after repeated failures",
                    service=self.service,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    attempts=attempts,
                    error=type(exc).__name__,
                )

    def _headers(self, record: Record, exc: Exception, attempts: int) -> dict[str, str]:
        return {
            topics.DLQ_REASON: (
                f"{self.service} could not process it after {attempts} attempts: "
                f"{type(exc).__name__}"
            ),
            topics.DLQ_REASON_CODE: "processing-failed",
            topics.DLQ_ORIGIN_TOPIC: record.topic,
            topics.DLQ_ORIGIN_PARTITION: str(record.partition),
            topics.DLQ_ORIGIN_OFFSET: str(record.offset),
            topics.DLQ_REJECTED_BY: self.service,
            ATTEMPTS_HEADER: str(attempts),
        }

    async def _pause_and_raise(
        self, records: Sequence[Any], exc: Exception, attempts: int | None = None
    ) -> NoReturn:
        pause = self.backoff.next_pause()
        log.warning(
            "batch failed, it will come again",
            exc_info=attempts is not None,  # an outage needs no traceback; anything else does
            service=self.service,
            records=len(records),
            error=type(exc).__name__,
            transient=attempts is None,
            attempts=attempts,
            retry_in=pause,
        )
        await asyncio.sleep(pause)
        raise exc


def dead_letter_with(broker: Any) -> DeadLetter:
    """A `DeadLetter` producing with a FastStream Kafka broker, waiting for the ack."""

    async def produce(record: Record, headers: dict[str, str]) -> None:
        await broker.publish(record.value or b"", topics.DLQ, key=record.key, headers=headers)

    return produce


def _position(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
