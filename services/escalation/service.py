"""The escalation service: a case-log consumer and a timer loop on one broker and one store.

Start several instances on one database and they share the work: Kafka splits
the case log's partitions among the group's members, and the store's leases
split the due timers.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import source_urn
from contracts.registry import AgencyRegistry
from contracts.topics import CASES
from services.escalation.consumer import CaseLogConsumer
from services.escalation.levels import Context
from services.escalation.loop import TimerLoop
from services.escalation.model import SYSTEM
from services.runtime.config.settings import Settings
from services.runtime.consumer.backoff import Backoff
from services.runtime.consumer.poison import PoisonGuard, dead_letter_with
from services.runtime.consumer.subscriber import batch_subscriber, records_of
from services.runtime.kafka.clients import Outgoing, make_broker, publish_all
from services.runtime.process.clock import Clock, SystemClock

MAX_RECORDS = 500
"""Records per batch: large enough to amortise a transaction, small enough to replay."""


def _instance_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class EscalationService:
    """One instance of the escalation service; `start()` and `stop()` it, or run `broker`.

    `broker` is the FastStream broker with the case-log subscriber; the timer
    loop runs beside it once it is connected (`start_timers`, `stop_timers`).
    """

    def __init__(
        self,
        settings: Settings,
        registry: AgencyRegistry,
        engine: AsyncEngine,
        bootstrap: str,
        *,
        clock: Clock | None = None,
        group_id: str = "ketenbus-escalation",
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.instance_id = (instance_id or _instance_id())[:64]
        self.source = source_urn(registry.operator.oin, SYSTEM)
        self.broker: KafkaBroker = make_broker(settings, bootstrap, client_id=SYSTEM)
        self.timers = TimerLoop(
            engine,
            self.context,
            self._publish,
            clock=self.clock,
            instance_id=self.instance_id,
            lease_s=settings.timer_lease_s,
            ready=lambda: self.broker.running,
        )
        self.consumer = CaseLogConsumer(engine, self.context, self._publish, self.timers.wake)
        guard = PoisonGuard(
            "escalation", settings.max_attempts, dead_letter_with(self.broker), Backoff()
        )

        # At least once: committed after the state is committed and the events acked.
        @batch_subscriber(
            self.broker, CASES, group_id=group_id, max_records=MAX_RECORDS, settings=settings
        )
        async def on_cases(msg: KafkaMessage) -> None:
            await guard.run(records_of(msg.raw_message), self.consumer.handle, msg.consumer)

    def context(self) -> Context:
        """The rules' view of the world at this moment of clock time."""
        return Context(
            registry=self.registry,
            source=self.source,
            now=self.clock.now(),
            ping_pong_limit=self.settings.ping_pong_limit,
            repeat=self.settings.escalation_repeat,
        )

    async def _publish(self, messages: Sequence[Outgoing]) -> None:
        await publish_all(self.broker, messages)

    async def start(self) -> None:
        """Connect, join the group and start the timer loop."""
        await self.broker.start()
        await self.start_timers()

    async def stop(self) -> None:
        """Stop the timer loop first (it produces through the broker), then the broker."""
        await self.stop_timers()
        await self.broker.stop()

    async def start_timers(self) -> None:
        """Start the timer loop; it fires nothing until the broker is running."""
        self.timers.start()

    async def stop_timers(self) -> None:
        await self.timers.stop()
