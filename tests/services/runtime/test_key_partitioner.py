"""The producers' partitioner puts every key where aiokafka's default partitioner does."""

from __future__ import annotations

from uuid import uuid4

from aiokafka.partitioner import DefaultPartitioner

from services.runtime.kafka.clients import KeyPartitioner


def test_every_key_goes_to_the_default_partitioners_partition_first_time_and_after() -> None:
    ours, default = KeyPartitioner(), DefaultPartitioner()
    keys = [str(uuid4()).encode() for _ in range(200)]
    for partitions in ([0, 1, 2], [0, 1, 2, 3, 4, 5, 6], [0]):
        for key in keys + keys:  # the second time from its memory
            assert default(key, partitions, partitions) == ours(key, partitions, partitions)


def test_it_forgets_keys_beyond_its_size_and_still_agrees() -> None:
    ours, default = KeyPartitioner(), DefaultPartitioner()
    keys = [str(uuid4()).encode() for _ in range(KeyPartitioner.KEYS + 10)]

    assert [ours(key, [0, 1, 2], [0, 1, 2]) for key in keys] == [
        default(key, [0, 1, 2], [0, 1, 2]) for key in keys
    ]
    assert len(ours._hashes) <= KeyPartitioner.KEYS


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
