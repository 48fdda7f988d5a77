"""A busy batch consumer reads on before it delivers, so its batch is not one delivery old.

aiokafka fetches ahead: once a batch is taken, it fetches what has arrived
since and holds it for the next `getmany`, and while it holds records it
fetches nothing more from their broker. A batch subscriber whose delivery
takes T therefore starts each batch with records fetched T ago, and what
arrived during the delivery waits in the broker for the batch after: under
steady load every event waits for two deliveries before its own. At 1,000
events/s into the router (T ~30 ms) that was a third of emit-to-inbox.

So a batch that comes straight after a delivery of at least `wait_ms` (within
as long again as that delivery took) is topped up: one more read, which sends
the fetch the held records were holding back and waits up to `wait_ms` for its
answer. A batch that comes after a quiet moment holds fresh records and is
delivered as it is, so a lone event does not wait.

The records read on are not in FastStream's message, so FastStream's nack
does not know them: when a delivery fails, `CatchUp.run` rewinds their
partitions to the first of them before the failure reaches FastStream, and
nothing is committed past a record that was not delivered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka.annotations import KafkaMessage

from services.runtime.consumer.subscriber import records_of

WAIT_MS = 10
"""How long a top-up waits for the fetch it sends; also what counts as a long delivery,
and as straight after one."""


class CatchUp:
    """Tops up one subscriber's batches after long deliveries; one instance per subscriber."""

    def __init__(self, max_records: int, *, wait_ms: float = WAIT_MS) -> None:
        self.max_records = max_records
        self.wait_ms = wait_ms
        self._last_start = float("-inf")
        self._last_end = float("-inf")

    async def run(
        self, message: KafkaMessage, deliver: Callable[[Sequence[Any]], Awaitable[None]]
    ) -> None:
        """`deliver` the message's records, topped up when they are stale; raise as it raises."""
        records = records_of(message.raw_message)
        consumer = message.consumer
        extra: tuple[Any, ...] = ()
        if isinstance(consumer, AIOKafkaConsumer) and self._stale(len(records)):
            more = await consumer.getmany(
                timeout_ms=int(self.wait_ms), max_records=self.max_records - len(records)
            )
            extra = tuple(chain.from_iterable(more.values()))
        self._last_start = time.monotonic()
        try:
            await deliver(records + extra)
        except BaseException:
            if extra:
                rewind(consumer, extra)
            raise
        finally:
            self._last_end = time.monotonic()

    def _stale(self, count: int) -> bool:
        # Records held since the last delivery began are as old as it took. Coming
        # back within as long again (the offset commit, a `getmany` that found them
        # held) means it was busy; after a longer pause they were fetched fresh.
        took = self._last_end - self._last_start
        return (
            count < self.max_records
            and took >= self.wait_ms / 1000
            and time.monotonic() - self._last_end < took
        )


def rewind(consumer: AIOKafkaConsumer, records: Sequence[Any]) -> None:
    """Seek each assigned partition of `records` back to the first of them."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(record.offset, first.get(tp, record.offset))
    assigned = consumer.assignment()
    for tp, offset in first.items():
        if tp in assigned:  # a partition revoked meanwhile is its new owner's to read
            consumer.seek(tp, offset)
