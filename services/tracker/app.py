"""The tracker's Kafka consumer: batches from `ketenbus.cases` into the case store.

A batch subscriber with manual commits (`AckPolicy.NACK_ON_ERROR`): FastStream
commits the group's offsets after the handler returns, that is after the
batch's transaction is committed; if the handler raises, the consumer seeks
back to the batch's first records and the batch comes again. The ledger skips
the event ids it already recorded, so a replay changes nothing twice. A batch
that keeps failing for a reason other than an outage has its poison message
set aside to the dead-letter topic (`services.runtime.consumer.poison`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import CaseEvent
from contracts.handoff import Refused
from contracts.parse import EventRejected
from contracts.registry import AgencyRegistry
from contracts.topics import CASES
from services.runtime.config.settings import Settings
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.case_log import case_event_of
from services.runtime.consumer.catch_up import CatchUp
from services.runtime.consumer.poison import (
    DeadLetter,
    PoisonGuard,
    dead_letter_headers,
    dead_letter_with,
)
from services.runtime.consumer.subscriber import batch_subscriber
from services.runtime.kafka.clients import make_broker
from services.runtime.observability.logging import get_logger
from services.tracker.ledger import BatchResult, apply_batch

MAX_RECORDS = 2000
"""Records per batch: large enough to amortise a transaction, small enough to replay."""

log = get_logger("ketenbus.tracker")


class CaseRecorder:
    """Parses a batch of records and applies it to the store in one transaction."""

    def __init__(
        self, engine: AsyncEngine, registry: AgencyRegistry, set_aside: DeadLetter | None = None
    ) -> None:
        """`set_aside`: where a record that is no event goes (the dead-letter topic);
        without it, such a record is only logged."""
        self.engine = engine
        self.registry = registry
        self.set_aside = set_aside

    async def record(self, records: Sequence[Any]) -> BatchResult:
        """Apply the events in `records` (aiokafka ConsumerRecords); raise if the store fails.

        A record that is no event is skipped, logged and, once the batch is stored,
        set aside: it must not stop the case log, and must not vanish either.
        """
        events: list[CaseEvent[Any]] = []
        unreadable: list[tuple[Any, EventRejected]] = []
        for record in records:
            try:
                events.append(case_event_of(record))
            except EventRejected as exc:
                unreadable.append((record, exc))
        result = await apply_batch(self.engine, self.registry, events)
        _log_result(result)
        if self.set_aside is not None:
            for record, rejected in unreadable:
                reason = f"not an event the tracker can record: {rejected}"
                await self.set_aside(
                    record, dead_letter_headers(record, "tracker", rejected.code, reason)
                )
        return result


def _position(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def _log_result(result: BatchResult) -> None:
    # Refusals are always worth a line; the per-event debug lines cost more to
    # build than the event costs to apply, so they are built only when shown.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    if debug:
        for event in result.duplicates:
            log.debug(
                "event already recorded, skipped",
                case_id=str(event.subject),
                event_id=str(event.id),
                event_type=event.name,
            )
    for recorded in result.recorded:
        if not debug and not isinstance(recorded.decision, Refused):
            continue
        event = recorded.event
        fields = {
            "case_id": str(event.subject),
            "event_id": str(event.id),
            "correlation_id": str(event.correlationid),
            "event_type": event.name,
            "agency": recorded.emitter,
        }
        if isinstance(recorded.decision, Refused):
            log.warning("event refused", reason=recorded.decision.reason, **fields)
        else:
            log.debug("event applied", **fields)
    log.debug(
        "batch recorded",
        applied=result.applied,
        refused=result.refused,
        duplicates=len(result.duplicates),
    )


def create_tracker(
    settings: Settings,
    registry: AgencyRegistry,
    engine: AsyncEngine,
    bootstrap: str,
    *,
    group_id: str = "ketenbus-tracker",
    recorder: CaseRecorder | None = None,
) -> KafkaBroker:
    """The tracker's broker: one batch subscriber on `ketenbus.cases` in `group_id`.

    `recorder`: what applies each batch (default `CaseRecorder` setting aside to the DLQ);
    the benchmark passes one that also notes when the first batch arrived.
    """
    broker = make_broker(settings, bootstrap, client_id="ketenbus-tracker")
    dead_letter = dead_letter_with(broker)
    recorder = recorder or CaseRecorder(engine, registry, dead_letter)
    guard = PoisonGuard("tracker", settings.max_attempts, dead_letter, Backoff())
    catch_up = CatchUp(MAX_RECORDS)

    @batch_subscriber(broker, CASES, group_id=group_id, max_records=MAX_RECORDS, settings=settings)
    async def on_cases(msg: KafkaMessage) -> None:
        await catch_up.run(msg, lambda records: guard.run(records, recorder.record, msg.consumer))

    return broker
