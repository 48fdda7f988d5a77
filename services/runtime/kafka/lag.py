"""How far each consumer group of the bus is behind: committed offsets against the log ends.

The log end of a partition is the high-watermark of a fetch (the embedded
broker's `end_offsets` is wrong under producer batching). Nothing is
committed and no group is joined: looking changes nothing on the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from contracts import topics
from contracts.registry import AgencyRegistry
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.acl import ESCALATION_GROUP, ROUTER_GROUP, TRACKER_GROUP
from services.runtime.kafka.clients import client_security

LAG_TIMEOUT = 10.0
"""Seconds to connect, and then to read the offsets, before giving up."""


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset; None when it has committed nothing here."""
    end: int

    @property
    def lag(self) -> int:
        """Records not yet committed: the whole partition when nothing is committed."""
        return max(0, self.end - (self.committed or 0))


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


def bus_groups(registry: AgencyRegistry) -> dict[str, list[str]]:
    """The bus's consumer groups and the topics each reads."""
    return {
        ROUTER_GROUP: [topics.outbox(agency.code) for agency in registry.agencies],
        TRACKER_GROUP: [topics.CASES],
        ESCALATION_GROUP: [topics.CASES],
    }


def bootstrap_of(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"


async def group_lags(
    settings: Settings,
    groups: Mapping[str, Sequence[str]],
    *,
    timeout: float = LAG_TIMEOUT,
) -> list[GroupLag]:
    """Each group's committed offset, log end and lag on every partition of its topics.

    Connecting and reading are each bounded by `timeout`; an unreachable broker,
    a missing topic or a timeout is a UserError.
    """
    from aiokafka.errors import KafkaError

    bootstrap = bootstrap_of(settings)
    security = client_security(settings)
    async with _reader(bootstrap, security, timeout) as reader:
        try:
            return await asyncio.wait_for(_measure(reader, bootstrap, security, groups), timeout)
        except TimeoutError:
            raise UserError(
                f"consumer group offsets not read from {bootstrap} in {timeout:g} s"
            ) from None
        except KafkaError as exc:
            raise UserError(f"cannot read consumer group offsets from {bootstrap}: {exc}") from None


async def high_watermarks(
    settings: Settings, names: Sequence[str], *, timeout: float = LAG_TIMEOUT
) -> dict[tuple[str, int], int]:
    """The log end (fetch high-watermark) of every partition of the topics in `names`.

    Keyed by (topic, partition); topics that do not exist are left out. Like
    `group_lags`, connecting and reading are each bounded by `timeout`, and an
    unreachable broker or a timeout is a UserError.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    bootstrap = bootstrap_of(settings)

    async def read(reader: Any) -> dict[tuple[str, int], int]:
        existing = await reader.topics()
        partitions = [
            TopicPartition(name, number)
            for name in sorted(set(names) & existing)
            for number in sorted(reader.partitions_for_topic(name) or ())
        ]
        ends = await _high_watermarks(reader, partitions) if partitions else {}
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    async with _reader(bootstrap, client_security(settings), timeout) as reader:
        try:
            return await asyncio.wait_for(read(reader), timeout)
        except TimeoutError:
            raise UserError(f"log ends not read from {bootstrap} in {timeout:g} s") from None
        except KafkaError as exc:
            raise UserError(f"cannot read log ends from {bootstrap}: {exc}") from None


@asynccontextmanager
async def _reader(
    bootstrap: str, security: Mapping[str, Any], timeout: float
) -> AsyncIterator[Any]:
    """A started consumer without a group that fetches little: for reading high-watermarks."""
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=1024,
        **security,
    )
    try:
        await asyncio.wait_for(reader.start(), timeout)
    except Exception:  # noqa: BLE001 - any failure to connect is reported in one line
        await reader.stop()
        raise UserError(
            f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?"
        ) from None
    try:
        yield reader
    finally:
        await reader.stop()


async def _measure(
    reader: Any, bootstrap: str, security: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
) -> list[GroupLag]:
    from aiokafka import TopicPartition

    existing = await reader.topics()
    names = sorted({name for names in groups.values() for name in names})
    absent = [name for name in names if name not in existing]
    if absent:
        raise UserError(f"topic {', '.join(absent)} does not exist on {bootstrap}")
    partitions = [
        TopicPartition(name, number)
        for name in names
        for number in sorted(reader.partitions_for_topic(name) or ())
    ]
    committed = {
        group: await _committed(bootstrap, security, group, partitions, groups[group])
        for group in groups
    }
    ends = await _high_watermarks(reader, partitions)
    return [
        GroupLag(
            group,
            tuple(
                PartitionLag(tp.topic, tp.partition, committed[group].get(tp), ends[tp])
                for tp in partitions
                if tp.topic in groups[group]
            ),
        )
        for group in groups
    ]


async def _committed(
    bootstrap: str,
    security: Mapping[str, Any],
    group: str,
    partitions: Sequence[Any],
    names: Sequence[str],
) -> dict[Any, int | None]:
    """`group`'s committed offset on each partition of `names` (None: nothing committed)."""
    from aiokafka import AIOKafkaConsumer

    # A consumer with the group id that never subscribes: it asks the coordinator
    # for the group's offsets without joining the group.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **security
    )
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in partitions if tp.topic in names}
    finally:
        await consumer.stop()


async def _high_watermarks(reader: Any, partitions: Sequence[Any]) -> dict[Any, int]:
    """The high-watermark of the first fetch of each partition."""
    reader.assign(list(partitions))
    await reader.seek_to_beginning(*partitions)
    ends: dict[Any, int] = {}
    while len(ends) < len(partitions):
        await reader.getmany(timeout_ms=100)
        for tp in partitions:
            mark = reader.highwater(tp)
            if tp not in ends and mark is not None:
                ends[tp] = mark
    return ends
