"""A batch that keeps failing: outages are waited out, a poison message is set aside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy.exc import OperationalError

from contracts import topics
from services.runtime.consumer import backoff, poison
from services.runtime.consumer.poison import ATTEMPTS_HEADER, PoisonGuard, Record


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"case"
    value: bytes | None = b"{}"
    headers: Sequence[tuple[str, bytes | None]] = ()


def _batch(n: int) -> list[FakeRecord]:
    return [FakeRecord("ketenbus.cases", 0, offset) for offset in range(n)]


class Consumer:
    """Processes records, failing on the offsets in `poison` and while `outage` is set."""

    def __init__(self, poison: set[int] | None = None, outage: bool = False) -> None:
        self.poison = poison or set()
        self.outage = outage
        self.done: list[int] = []

    async def process(self, records: Sequence[FakeRecord]) -> None:
        if self.outage:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("store down"))
        if any(r.offset in self.poison for r in records):
            raise ValueError("cannot process")
        self.done += [r.offset for r in records]


class DeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[int, dict[str, str]]] = []

    async def __call__(self, record: Record, headers: dict[str, str]) -> None:
        self.letters.append((record.offset, headers))


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff, "FIRST_S", 0.0)


def _guard(letters: DeadLetters, attempts: int = 3) -> PoisonGuard:
    return PoisonGuard("tracker", attempts, letters, backoff.Backoff())


async def test_a_poison_message_is_dead_lettered_after_the_attempts_and_the_rest_goes_on() -> None:
    """After `max_attempts` failed rounds the records go one by one: the bad one is
    dead-lettered with its origin and attempts, the others are processed."""
    consumer, letters = Consumer(poison={2}), DeadLetters()
    guard = _guard(letters, attempts=3)
    batch = _batch(5)

    for _ in range(2):
        with pytest.raises(ValueError, match="cannot process"):
            await guard.run(batch, consumer.process)
    await guard.run(batch, consumer.process)

    assert [0, 1, 3, 4] == consumer.done
    [(offset, headers)] = letters.letters
    assert 2 == offset
    assert ("processing-failed", "3", "ketenbus.cases", "2") == (
        headers[topics.DLQ_REASON_CODE],
        headers[ATTEMPTS_HEADER],
        headers[topics.DLQ_ORIGIN_TOPIC],
        headers[topics.DLQ_ORIGIN_OFFSET],
    )


async def test_a_dead_letter_keeps_the_records_own_headers_but_the_dead_letter_ones() -> None:
    """The record's correlation id and a replay's mark travel with its dead letter; a
    reason header it came with is replaced by the dead letter's own."""
    consumer, letters = Consumer(poison={0}), DeadLetters()
    sent = (
        ("correlation_id", b"c-1"),
        ("ketenbus-replay-of", b"ketenbus.dlq/0@7"),
        (topics.DLQ_REASON_CODE, b"forged"),
        ("odd", b"\xff"),
    )
    record = FakeRecord("ketenbus.cases", 0, 0, headers=sent)

    await guard_run_until_dead_lettered(_guard(letters, attempts=1), [record], consumer)

    [(_, headers)] = letters.letters
    assert ("c-1", "ketenbus.dlq/0@7", "processing-failed", "\\xff") == (
        headers["correlation_id"],
        headers["ketenbus-replay-of"],
        headers[topics.DLQ_REASON_CODE],
        headers["odd"],
    )


async def guard_run_until_dead_lettered(
    guard: PoisonGuard, batch: list[FakeRecord], consumer: Consumer
) -> None:
    for _ in range(guard.max_attempts + 1):
        try:
            await guard.run(batch, consumer.process)
        except ValueError:
            continue
        return
    raise AssertionError("the record was never dead-lettered")


async def test_an_outage_is_retried_however_often_and_sets_nothing_aside() -> None:
    """An outage is no attempt: the batch comes again however often, nothing is set aside."""
    consumer, letters = Consumer(outage=True), DeadLetters()
    guard = _guard(letters, attempts=2)
    batch = _batch(3)

    for _ in range(5):
        with pytest.raises(OperationalError):
            await guard.run(batch, consumer.process)
    consumer.outage = False
    await guard.run(batch, consumer.process)

    assert [] == letters.letters
    assert [0, 1, 2] == consumer.done


async def test_a_batch_that_succeeds_on_a_retry_sets_nothing_aside() -> None:
    """A batch that fails once and then goes through is processed whole, nothing set aside."""
    consumer, letters = Consumer(poison={1}), DeadLetters()
    guard = _guard(letters, attempts=3)
    batch = _batch(2)

    with pytest.raises(ValueError, match="cannot process"):
        await guard.run(batch, consumer.process)
    consumer.poison = set()
    await guard.run(batch, consumer.process)

    assert ([], [0, 1]) == (letters.letters, consumer.done)


async def test_an_outage_while_isolating_stops_and_the_batch_comes_again() -> None:
    """An outage met while going one by one is raised at once, nothing more set aside."""
    consumer, letters = Consumer(poison={0}), DeadLetters()
    guard = _guard(letters, attempts=1)

    async def outage_after_first(records: Sequence[FakeRecord]) -> None:
        if records[0].offset == 1:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("store down"))
        await consumer.process(records)

    with pytest.raises(OperationalError):
        await guard.run(_batch(3), outage_after_first)

    assert [0] == [offset for offset, _ in letters.letters]
    assert [] == consumer.done


async def test_attempts_are_counted_per_record_even_when_the_batch_s_first_record_changes() -> None:
    """Attempts belong to a record, not to a batch's first record: a bad record is set aside
    after `max_attempts` rounds however the batches around it begin, and with that count."""
    consumer, letters = Consumer(poison={7}), DeadLetters()
    guard = _guard(letters, attempts=3)
    bad = FakeRecord("ketenbus.cases", 0, 7)
    other = [FakeRecord("ketenbus.cases", 1, offset) for offset in range(2)]
    rounds = [[other[0], bad], [bad, other[0]], [other[1], bad]]  # as refetched, reordered

    for batch in rounds[:2]:
        with pytest.raises(ValueError, match="cannot process"):
            await guard.run(batch, consumer.process)
    await guard.run(rounds[2], consumer.process)

    [(offset, headers)] = letters.letters
    assert (7, "3") == (offset, headers[ATTEMPTS_HEADER])
    assert [1] == consumer.done


async def test_the_attempts_of_records_that_went_through_or_were_set_aside_are_forgotten() -> None:
    """Only records that still fail are remembered: none once the batch went on."""
    consumer, letters = Consumer(poison={1}), DeadLetters()
    guard = _guard(letters, attempts=2)
    batch = _batch(3)

    with pytest.raises(ValueError, match="cannot process"):
        await guard.run(batch, consumer.process)
    remembered = guard.tracked()
    await guard.run(batch, consumer.process)

    assert (3, 0) == (remembered, guard.tracked())


async def test_the_attempts_remembered_are_bounded_the_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most `TRACKED` records are remembered; a forgotten one starts its count again."""
    monkeypatch.setattr(poison, "TRACKED", 2)
    consumer, letters = Consumer(poison={0}), DeadLetters()
    guard = _guard(letters, attempts=2)

    with pytest.raises(ValueError, match="cannot process"):
        await guard.run(_batch(3), consumer.process)  # records 0, 1, 2: 0 forgotten
    remembered = guard.tracked()
    with pytest.raises(ValueError, match="cannot process"):
        await guard.run(_batch(1), consumer.process)  # record 0 again: its first attempt

    assert (2, []) == (remembered, letters.letters)
