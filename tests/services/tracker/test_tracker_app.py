"""The tracker's subscriber, in memory (FastStream's TestKafkaBroker) over a SQLite store.

Delivery, commits and replays against a real broker are tested elsewhere; here:
the handler parses the batch's raw records, applies them, skips what does not
parse, and raises (so FastStream replays) when the store fails.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from asyncpg.exceptions import CharacterNotInRepertoireError
from faststream.kafka import TestKafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from contracts import topics
from contracts.parse import parse_event
from contracts.registry import AgencyRegistry
from contracts.topics import CASES
from services.casefile.queries import case_view
from services.runtime.config.settings import Settings
from services.runtime.consumer.poison import Record
from services.runtime.store.engine import make_engine
from services.tracker.app import CaseRecorder, create_tracker
from services.tracker.ledger import apply_batch
from tests._testutil import PERSONAL_NAME, EventFactory

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _record(value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=CASES,
        partition=1,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=[],
    )


@SQLITE_ONLY
async def test_events_published_on_the_case_log_reach_the_store(
    store: AsyncEngine, registry: AgencyRegistry, settings: Settings, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    broker = create_tracker(settings, registry, store, "localhost:9092")

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(make.opened(case_id, by="uwv").to_json(), CASES)
        await test_broker.publish(make.requested(case_id, handoff_id).to_json(), CASES)
        await test_broker.publish(make.accepted(case_id, handoff_id).to_json(), CASES)

    view = await case_view(store, case_id)
    assert view is not None
    assert ("svb", 3) == (view.holder, len(view.timeline))


@SQLITE_ONLY
async def test_a_record_that_does_not_parse_is_skipped_and_the_rest_applied(
    store: AsyncEngine,
    registry: AgencyRegistry,
    make: EventFactory,
) -> None:
    case_id = uuid.uuid4()
    records = [
        _record(b"{not json", 7),
        _record(make.opened(case_id, by="uwv").to_json(), 8),
    ]

    with capture_logs() as logs:
        result = await CaseRecorder(store, registry).record(records)

    assert (1, 0) == (result.applied, result.refused)
    skipped = [
        entry for entry in logs if entry["event"] == "unreadable record on the case log skipped"
    ]
    assert [(CASES, 1, 7, "malformed-json")] == [
        (e["topic"], e["partition"], e["offset"], e["reason_code"]) for e in skipped
    ]


NUL_RULE = "Pw art.\u0000 18"
"""A rule reference with a NUL: the one free text the tracker stores."""


async def test_a_nul_in_a_text_is_set_aside_and_the_rest_of_the_batch_applied(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    """On SQLite and PostgreSQL (whose text cannot hold a NUL): an event with one on
    the case log is set aside with `nul-character`, not retried; the others, of the
    same case too, are applied."""
    bad_case, good_case = uuid.uuid4(), uuid.uuid4()
    set_aside: list[tuple[int, dict[str, str]]] = []

    async def dead_letter(record: Record, headers: dict[str, str]) -> None:
        set_aside.append((record.offset, headers))

    records = [
        _record(make.opened(bad_case, by="uwv").to_json(), 3),
        _record(make.escalation_requested(bad_case, rule_reference=NUL_RULE).to_json(), 4),
        _record(make.opened(good_case, by="uwv").to_json(), 5),
    ]

    result = await CaseRecorder(store, registry, dead_letter).record(records)

    assert (2, 0) == (result.applied, result.refused)
    assert [(4, "nul-character", "tracker")] == [
        (offset, h[topics.DLQ_REASON_CODE], h[topics.DLQ_REJECTED_BY]) for offset, h in set_aside
    ]
    bad, good = await case_view(store, bad_case), await case_view(store, good_case)
    assert (1, 1) == (len(bad.timeline) if bad else 0, len(good.timeline) if good else 0)


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_postgresql_cannot_store_a_nul_which_is_why_it_is_set_aside(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    """Without the screen the batch could never be stored: PostgreSQL refuses the NUL."""
    case_id = uuid.uuid4()
    events = [
        make.opened(case_id, by="uwv"),
        parse_event(make.escalation_requested(case_id, rule_reference=NUL_RULE).to_json()),
    ]

    with pytest.raises(CharacterNotInRepertoireError, match="0x00"):
        await apply_batch(store, registry, events)


async def test_a_store_failure_raises_so_the_batch_is_replayed(
    tmp_path: Path, registry: AgencyRegistry, make: EventFactory
) -> None:
    """An unmigrated store has no tables: the batch must fail, not be acknowledged."""
    from sqlalchemy.exc import OperationalError

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    recorder = CaseRecorder(engine, registry)
    try:
        with pytest.raises(OperationalError):
            await recorder.record([_record(make.opened(uuid.uuid4()).to_json(), 1)])
    finally:
        await engine.dispose()


def test_running_the_tracker_without_a_bootstrap_exits_with_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "KETENBUS_KAFKA_BOOTSTRAP": "",
        "KETENBUS_DATA_DIR": str(tmp_path),
    }

    done = subprocess.run(
        [sys.executable, "-m", "services.tracker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "KETENBUS_KAFKA_BOOTSTRAP is not set" in done.stderr
    assert "ketenbus up" in done.stderr


@SQLITE_ONLY
async def test_a_refusal_is_logged_with_case_and_event_id_and_no_personal_data(
    store: AsyncEngine, registry: AgencyRegistry, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    refused = make.closed(case_id, by="uwv")

    with capture_logs() as logs:
        await CaseRecorder(store, registry).record([_record(refused.to_json(), 3)])

    assert [("warning", str(case_id), str(refused.id), "unknown case")] == [
        (e["log_level"], e["case_id"], e["event_id"], e["reason"])
        for e in logs
        if e["event"] == "event refused"
    ]
    assert all(
        {"case_id", "event_id"} <= entry.keys()
        for entry in logs
        if entry["event"] in {"event refused", "event applied", "event already recorded, skipped"}
    )
    assert PERSONAL_NAME not in repr(logs)
