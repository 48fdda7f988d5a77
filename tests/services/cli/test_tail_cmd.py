"""`ketenbus tail`: what a line shows (pure), and following a topic on the embedded broker.

Other tests share the broker, so the broker tests write events of fresh cases and
keep to them with `--case`, or follow a topic of their own.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from contracts import topics
from contracts.case import PersonalSection
from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from contracts.sealing import seal_personal
from services.cli import tail_cmd
from services.runtime.kafka.embedded import free_port
from services.runtime.kafka.topics import ensure_topics
from services.runtime.text.tail import as_json, describe, render
from tests._testutil import PERSONAL_NAME, EventFactory, produce
from tests.services.router.events import BSN, CITIZEN, full_context, with_context

REPO = Path(__file__).resolve().parents[3]
AT_MS = int(datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC).timestamp() * 1000)


def _line(registry: AgencyRegistry, value: bytes | None) -> str:
    return render(describe(registry, partition=2, offset=17, timestamp_ms=AT_MS, value=value))


def test_a_handoff_line_shows_time_position_type_case_sender_and_from_to(
    registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    event = EventFactory(registry).requested(case_id, uuid.uuid4(), "uwv", "svb")

    line = _line(registry, event.to_json())

    expected = f"2026-03-02 09:30:15.250Z  2:17  handoff-requested  {case_id}  uwv  uwv -> svb"
    assert expected == line


def test_an_escalation_line_shows_level_team_and_trigger_from_the_operator(
    registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    event = EventFactory(registry).escalation_raised(case_id, level=2, trigger="ping-pong")

    line = _line(registry, event.to_json())

    expected = (
        f"2026-03-02 09:30:15.250Z  2:17  escalation-raised  {case_id}  ketenbus  "
        "level 2 team gm0363/regionaal-escalatieteam trigger ping-pong"
    )
    assert expected == line


def test_an_event_without_a_summary_shows_nothing_after_its_sender(
    registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    event = EventFactory(registry).opened(case_id, by="uwv")

    assert f"2026-03-02 09:30:15.250Z  2:17  case-opened  {case_id}  uwv" == _line(
        registry, event.to_json()
    )


def test_a_message_that_is_not_an_event_shows_only_its_size(registry: AgencyRegistry) -> None:
    assert "2026-03-02 09:30:15.250Z  2:17  (not an event: 9 bytes)" == _line(
        registry, b"not json!"
    )
    assert "2026-03-02 09:30:15.250Z  2:17  (not an event: 0 bytes)" == _line(registry, None)


def test_a_clear_personal_section_and_free_text_never_show(registry: AgencyRegistry) -> None:
    case_id = uuid.uuid4()
    clear = full_context("uwv").model_copy(
        update={"personal": PersonalSection(bsn=BSN, name=CITIZEN)}
    )
    factory = EventFactory(registry)
    events: list[CaseEvent[Any]] = [
        with_context(factory.requested(case_id, uuid.uuid4(), "uwv", "svb"), clear),
        factory.context_updated(case_id),
        factory.rejected(case_id, uuid.uuid4()),
        factory.escalation_requested(case_id),
        factory.escalation_raised(case_id),
    ]

    for event in events:
        value = event.to_json()
        line = _line(registry, value)
        record = describe(registry, partition=0, offset=0, timestamp_ms=AT_MS, value=value)
        shown = line + json.dumps(as_json(record))
        for secret in (BSN, CITIZEN, PERSONAL_NAME, "Dreigende", "Aanmaning", "Geen beslag"):
            assert secret not in shown, (event.name, secret)


def test_a_sealed_personal_section_never_shows(signed_registry: AgencyRegistry) -> None:
    case_id = uuid.uuid4()
    svb = signed_registry.agency("svb")
    assert svb is not None
    sealed = seal_personal(PersonalSection(bsn=BSN, name=CITIZEN), [svb])
    factory = EventFactory(signed_registry)
    event = with_context(
        factory.requested(case_id, uuid.uuid4(), "uwv", "svb"), full_context("uwv", sealed)
    )
    box = sealed.sealed["svb"]

    line = _line(signed_registry, event.to_json())
    record = describe(
        signed_registry, partition=0, offset=0, timestamp_ms=AT_MS, value=event.to_json()
    )

    assert f"2026-03-02 09:30:15.250Z  2:17  handoff-requested  {case_id}  uwv  uwv -> svb" == line
    assert box[:16] not in line + json.dumps(as_json(record))


def test_the_json_form_has_every_field_and_a_null_type_for_a_non_event(
    registry: AgencyRegistry,
) -> None:
    case_id = uuid.uuid4()
    event = EventFactory(registry).requested(case_id, uuid.uuid4(), "uwv", "svb")
    value = event.to_json()

    shown = as_json(describe(registry, partition=1, offset=4, timestamp_ms=AT_MS, value=value))
    other = as_json(describe(registry, partition=1, offset=5, timestamp_ms=AT_MS, value=b"{}"))

    assert {
        "time": "2026-03-02T09:30:15.250000Z",
        "partition": 1,
        "offset": 4,
        "type": "handoff-requested",
        "case_id": str(case_id),
        "source": "uwv",
        "summary": "uwv -> svb",
        "bytes": len(value),
    } == shown
    assert {
        "time": "2026-03-02T09:30:15.250000Z",
        "partition": 1,
        "offset": 5,
        "type": None,
        "case_id": None,
        "source": None,
        "summary": None,
        "bytes": 2,
    } == other


# --- against the embedded broker --------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """A group, so `tail` is invoked as under `ketenbus`."""

    tail_cmd.register(app)
    return app


def _env(bootstrap: str) -> dict[str, str | None]:
    return {
        "KETENBUS_KAFKA_BOOTSTRAP": bootstrap,
        "KETENBUS_KAFKA_SECURITY_PROTOCOL": None,
        "KETENBUS_REGISTRY": str(REPO / "deploy" / "agencies.yaml"),
    }


async def _tail(bootstrap: str, *args: str) -> Result:
    """Run `ketenbus tail ARGS` in a thread: the verb runs its own event loop."""

    def invoke() -> Result:
        return CliRunner().invoke(_cli(), ["tail", *args], env=_env(bootstrap))

    return await asyncio.wait_for(asyncio.to_thread(invoke), 60)


@pytest.mark.broker
@pytest.mark.timeout(90)
async def test_tail_from_start_prints_one_case_in_order_and_stops_at_the_limit(
    kafka: str, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    factory = EventFactory(registry)
    handoff = uuid.uuid4()
    events: list[CaseEvent[Any]] = [
        factory.opened(case_id, by="uwv"),
        factory.requested(case_id, handoff, "uwv", "svb"),
        factory.accepted(case_id, handoff, "uwv", "svb"),
    ]
    key = str(case_id).encode()
    await produce(kafka, topics.CASES, [(key, event.to_json()) for event in events])

    result = await _tail(
        kafka, topics.CASES, "--case", str(case_id), "--from-start", "--limit", "3"
    )

    assert 0 == result.exit_code, result.output
    shown = [line.split("  ")[2:] for line in result.output.splitlines()]
    assert [
        ["case-opened", str(case_id), "uwv"],
        ["handoff-requested", str(case_id), "uwv", "uwv -> svb"],
        ["handoff-accepted", str(case_id), "svb", "uwv -> svb"],
    ] == shown


@pytest.mark.broker
@pytest.mark.timeout(90)
async def test_tail_type_and_json_print_one_object_per_matching_event(
    kafka: str, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()
    factory = EventFactory(registry)
    handoff = uuid.uuid4()
    events: list[CaseEvent[Any]] = [
        factory.opened(case_id, by="uwv"),
        factory.requested(case_id, handoff, "uwv", "svb"),
        factory.rejected(case_id, handoff, "uwv", "svb"),
    ]
    key = str(case_id).encode()
    await produce(kafka, topics.CASES, [(key, event.to_json()) for event in events])

    result = await _tail(
        kafka,
        topics.CASES,
        "--case",
        str(case_id),
        "--type",
        "handoff-rejected",
        "--from-start",
        "--limit",
        "1",
        "--json",
    )

    assert 0 == result.exit_code, result.output
    [shown] = [json.loads(line) for line in result.output.splitlines()]
    assert ("handoff-rejected", str(case_id), "svb", "uwv -> svb") == (
        shown["type"],
        shown["case_id"],
        shown["source"],
        shown["summary"],
    )


@pytest.mark.broker
@pytest.mark.timeout(90)
async def test_tail_on_a_topic_of_its_own_shows_non_events_too(
    kafka: str, registry: AgencyRegistry
) -> None:
    topic = f"test.tail.{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka, [topic], partitions=1)
    case_id = uuid.uuid4()
    event = EventFactory(registry).escalation_raised(case_id, level=3, trigger="idle")
    await produce(kafka, topic, [(None, b"\x00\x01garbage"), (None, event.to_json())])

    result = await _tail(kafka, topic, "--from-start", "--limit", "2")

    assert 0 == result.exit_code, result.output
    first, second = result.output.splitlines()
    assert first.endswith("  0:0  (not an event: 9 bytes)")
    assert second.endswith(
        f"  0:1  escalation-raised  {case_id}  ketenbus  "
        "level 3 team gm0363/regionaal-escalatieteam trigger idle"
    )


@pytest.mark.broker
@pytest.mark.timeout(90)
async def test_tail_without_from_start_prints_only_what_arrives_after_it_starts(
    kafka: str, registry: AgencyRegistry
) -> None:
    """A tail started after one event prints the first that comes after it started, never
    the one before."""
    topic = f"test.tail.{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka, [topic], partitions=1)
    factory = EventFactory(registry)
    old = uuid.uuid4()
    await produce(kafka, topic, [(None, factory.opened(old).to_json())])

    following = asyncio.create_task(_tail(kafka, topic, "--limit", "1"))
    # The tail does not say when it has fixed the topic's end: a new event every 0.2 s
    # until it prints one. Whichever it prints came after the old one, at its offset.
    new: list[uuid.UUID] = []
    deadline = time.monotonic() + 30
    while not following.done():
        assert time.monotonic() < deadline, "the tail printed nothing in 30 s"
        new.append(uuid.uuid4())
        await produce(kafka, topic, [(None, factory.opened(new[-1]).to_json())])
        await asyncio.wait({following}, timeout=0.2)
    result = await following

    assert 0 == result.exit_code, result.output
    [line] = result.output.splitlines()
    assert str(old) not in line
    printed = [
        offset
        for offset, case_id in enumerate(new, start=1)
        if f"  0:{offset}  case-opened  {case_id}  uwv" in line
    ]
    assert 1 == len(printed), line


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_tail_of_an_unknown_topic_is_a_one_line_error(kafka: str) -> None:
    result = await _tail(kafka, "no.such.topic", "--from-start", "--limit", "1")

    assert 1 == result.exit_code
    assert f"topic no.such.topic does not exist on {kafka}" == str(result.exception)


@pytest.mark.timeout(60)
async def test_tail_with_no_broker_is_a_one_line_error() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    result = await _tail(bootstrap, topics.CASES, "--limit", "1")

    assert 1 == result.exit_code
    assert f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?" == str(
        result.exception
    )


async def test_tail_of_an_unknown_event_type_is_refused_before_connecting() -> None:
    result = await _tail("127.0.0.1:1", topics.CASES, "--type", "handoff-exploded")

    assert 1 == result.exit_code
    assert str(result.exception).startswith("unknown event type 'handoff-exploded'; known: ")
