"""The one way a service of the bus subscribes: in batches, at least once, bytes as sent.

- At least once: FastStream commits the group's offsets only after the
  handler returned (`AckPolicy.NACK_ON_ERROR`), that is after the batch's
  effects are stored and produced; if the handler raises, the consumer seeks
  back to the batch's first records and the batch comes again. FastStream's
  Kafka default commits before the handler runs, which would lose a batch to a
  crash.
- Bytes as sent: the handler reads the records itself (`msg.raw_message`), so
  FastStream decodes no body, and header values stay as written: one that is
  not UTF-8 must not drop the whole batch (`headers.lenient_batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from services.runtime.config.settings import Settings
from services.runtime.consumer.headers import lenient_batch
from services.runtime.kafka.clients import consumer_options

if TYPE_CHECKING:
    from faststream.kafka.subscriber.usecase import BatchSubscriber


async def _records_only(_: Any) -> None:
    """Skip FastStream's body decoding: the handler parses the raw records itself."""


def batch_subscriber(
    broker: KafkaBroker, *topics: str, group_id: str, max_records: int, settings: Settings
) -> BatchSubscriber:
    """The subscriber decorator for `topics` in consumer group `group_id`."""
    return broker.subscriber(
        *topics,
        batch=True,
        max_records=max_records,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_records_only,
        parser=lenient_batch,
        **consumer_options(settings),
    )


def records_of(raw: Any) -> tuple[Any, ...]:
    """The aiokafka ConsumerRecords of a batch message's `raw_message`."""
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)
