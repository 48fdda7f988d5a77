"""`ketenbus dlq list|show|counts|replay` against the embedded broker, through typer's CliRunner.

Other tests share the broker and its `ketenbus.dlq`, so each test writes dead
letters of its own cases (and, where it counts or replays by reason, with a
reason code of its own) and looks only at those.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from aiokafka import AIOKafkaProducer, ConsumerRecord
from click.testing import Result
from structlog.testing import capture_logs
from typer.testing import CliRunner

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.case import PersonalSection
from contracts.registry import AgencyRegistry
from services.cli import dlq_cmd
from services.dead_letters import REPLAY_OF, NeedsConfirmation, NotReplayable
from services.router.app import create_router
from services.router.routing import CaseRouting
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import Outgoing
from services.runtime.kafka.embedded import EmbeddedBroker, free_port
from services.runtime.kafka.refusals import Origin, refusal_messages
from services.runtime.kafka.topics import ensure_topics
from services.runtime.store.engine import make_engine, migrate
from tests._testutil import (
    EventFactory,
    headers_of,
    keyed,
    read_to_end,
    read_until,
    start_group_at_end,
)
from tests.services.router.events import BSN, CITIZEN, full_context, outbox_message, with_context

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

UWV_OUTBOX = topics.outbox("uwv")


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """A group, so the verbs are invoked as under `ketenbus dlq`."""

    app.add_typer(dlq_cmd.app, name="dlq")
    return app


async def _dlq(bootstrap: str, *args: str, answer: str | None = None) -> Result:
    """Run `ketenbus dlq ARGS` in a thread: the verb runs its own event loop.

    `answer`: what the operator types at a prompt (stdin is then taken for a terminal).
    """
    return await asyncio.to_thread(
        CliRunner().invoke,
        _cli(),
        ["dlq", *args],
        input=answer,
        env={"KETENBUS_KAFKA_BOOTSTRAP": bootstrap, "KETENBUS_KAFKA_SECURITY_PROTOCOL": None},
    )


@pytest.fixture
def at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verb takes its stdin for a terminal, so it asks before a replay that needs it."""
    monkeypatch.setattr(dlq_cmd, "_interactive", lambda: True)


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """What the verbs log (the operator's audit), kept out of their output."""
    with capture_logs() as captured:
        yield captured


async def _write(
    producer: AIOKafkaProducer, dead: Outgoing, *, timestamp_ms: int | None = None
) -> str:
    """Produce a dead letter as the service that refused it would; its ID."""
    assert topics.DLQ == dead.topic
    meta = await producer.send_and_wait(
        dead.topic,
        dead.value,
        key=dead.key,
        headers=[(name, value.encode()) for name, value in dead.headers.items()],
        timestamp_ms=timestamp_ms,
    )
    return f"{meta.partition}:{meta.offset}"


def _malformed(case_id: uuid.UUID | None = None) -> Outgoing:
    """The router's dead letter of bytes on uwv's outbox that are no JSON."""
    key = str(case_id or uuid.uuid4()).encode()
    headers = {
        topics.DLQ_REASON: "(event): not valid JSON",
        topics.DLQ_REASON_CODE: "malformed-json",
        topics.DLQ_ORIGIN_TOPIC: UWV_OUTBOX,
        topics.DLQ_ORIGIN_PARTITION: "0",
        topics.DLQ_ORIGIN_OFFSET: "3",
        topics.DLQ_REJECTED_BY: "router",
    }
    return Outgoing(topics.DLQ, key, b"{not json", headers)


class Letters:
    """Dead letters of fresh cases, as the router and the escalation service write them."""

    def __init__(self, registry: AgencyRegistry, keys: dict[str, AgencyKeys]) -> None:
        self.routing = CaseRouting(registry)
        self.make = EventFactory(registry)
        self.keys = keys

    def refused(self, code: str, *, offset: int = 42) -> tuple[Outgoing, uuid.UUID, bytes]:
        """A signed case-opened from uwv's outbox refused with `code`: dead letter, case, value."""
        case_id = uuid.uuid4()
        event = self.make.opened(case_id, by="uwv")
        value = self.keys["uwv"].sign(event)
        message = outbox_message("uwv", case_id, value, offset=offset)
        dead = self.routing.refuse(message, None, event, code, f"{code}: as a test refuses it")[0]
        return dead, case_id, value

    def redacted(self, code: str = "unsealed-personal-data") -> tuple[Outgoing, uuid.UUID]:
        """Personal data sent in clear: the router's dead letter has it removed."""
        case_id = uuid.uuid4()
        clear = full_context("uwv").model_copy(
            update={"personal": PersonalSection(bsn=BSN, name=CITIZEN)}
        )
        event = self.make.requested(case_id, uuid.uuid4(), "uwv", "gm0363")
        value = self.keys["uwv"].sign(with_context(event, clear))
        result = self.routing.check(outbox_message("uwv", case_id, value))
        assert isinstance(result, list)
        dead = result[0]
        headers = {**dead.headers, topics.DLQ_REASON_CODE: code}
        return Outgoing(dead.topic, dead.key, dead.value, headers), case_id

    def from_case_log(self, code: str = "not-holder") -> tuple[Outgoing, uuid.UUID]:
        """The escalation service's refusal of a record of `ketenbus.cases`."""
        case_id = uuid.uuid4()
        event = self.make.opened(case_id, by="uwv")
        origin = Origin(topics.CASES, 1, 7, str(case_id).encode(), event.to_json())
        dead = refusal_messages(
            origin,
            event,
            sender="uwv",
            code=code,
            reason=f"{code}: as a test refuses it",
            source=event.source,
            now=datetime.now(UTC),
            rejected_by="escalation",
        )[0]
        return Outgoing(dead.topic, dead.key, dead.value, dict(dead.headers)), case_id


@pytest.fixture
def letters(signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]) -> Letters:
    return Letters(signed_registry, agency_keys)


def _unique_code() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _line_of(output: str, needle: str) -> str:
    found = [line for line in output.splitlines() if needle in line]
    assert 1 == len(found), output
    return found[0]


def _replayed_ids(stdout: str) -> list[str]:
    """The IDs of the dead letters a `dlq replay` printed as replayed, in order."""
    return [
        line.split()[1]
        for line in stdout.splitlines()
        if line.startswith("replayed ") and " dead letter(s) with reason " not in line
    ]


async def _replays_of(kafka: str, dlq_id: str, count: int = 1) -> list[ConsumerRecord[Any, Any]]:
    return await read_until(
        kafka,
        UWV_OUTBOX,
        lambda r: headers_of(r).get(REPLAY_OF) == dlq_id,
        count=count,
        timeout=10,
    )


async def test_list_shows_each_dead_letter_with_its_reason_and_origin_and_no_personal_data(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    refused, refused_case, _ = letters.refused("unauthorised-type")
    redacted, redacted_case = letters.redacted()
    refused_id = await _write(producer, refused)
    redacted_id = await _write(producer, redacted)

    result = await _dlq(kafka, "list")

    assert 0 == result.exit_code, result.output
    first = _line_of(result.stdout, str(refused_case)).split()
    second = _line_of(result.stdout, str(redacted_case)).split()
    event_id = json.loads(refused.value)["id"]
    assert [refused_id, "unauthorised-type", "router", f"{UWV_OUTBOX}@0:42"] == [
        first[0],
        *first[3:6],
    ]
    assert [event_id, "case-opened"] == first[7:]
    assert [redacted_id, "unsealed-personal-data", "router", f"{UWV_OUTBOX}@0:42"] == [
        second[0],
        *second[3:6],
    ]
    assert "handoff-requested" == second[-1]
    assert BSN not in result.output
    assert CITIZEN not in result.output


async def test_list_by_reason_as_json_names_the_redacted_part(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    code = _unique_code()
    redacted, case_id = letters.redacted(code)
    dlq_id = await _write(producer, redacted)

    result = await _dlq(kafka, "list", "--json", "--reason", code)

    assert 0 == result.exit_code, result.output
    listed = json.loads(result.stdout)
    assert [(dlq_id, str(case_id), "data.context.personal", UWV_OUTBOX)] == [
        (item["id"], item["case_id"], item["redacted"], item["origin_topic"]) for item in listed
    ]
    assert BSN not in result.output


async def test_list_limit_shows_the_most_recent_oldest_first(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    code = _unique_code()
    # A second apart: dead letters written in the same millisecond have no order by time.
    now = int(datetime.now(UTC).timestamp() * 1000)
    ids = [
        await _write(producer, letters.refused(code)[0], timestamp_ms=now - 3000 + n * 1000)
        for n in range(3)
    ]

    result = await _dlq(kafka, "list", "--json", "--reason", code, "--limit", "2")

    assert 0 == result.exit_code, result.output
    assert ids[1:] == [item["id"] for item in json.loads(result.stdout)]
    assert "(the 2 most recent of 3 dead letters; --limit shows more)\n" == result.stderr


async def test_counts_are_by_reason_code_most_first(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    many, few = _unique_code(), _unique_code()
    for code in (few, many, many, many):
        await _write(producer, letters.refused(code)[0])

    as_json = await _dlq(kafka, "counts", "--json")
    as_text = await _dlq(kafka, "counts")

    assert (0, 0) == (as_json.exit_code, as_text.exit_code), as_json.output
    rows = [(row["reason_code"], row["count"]) for row in json.loads(as_json.stdout)]
    assert [(many, 3), (few, 1)] == [row for row in rows if row[0] in (many, few)]
    counts = [row[1] for row in rows]
    assert sorted(counts, reverse=True) == counts
    assert [many, "3"] == _line_of(as_text.stdout, many).split()
    assert ["total", str(sum(counts))] == as_text.stdout.splitlines()[-1].split()


async def test_show_prints_the_headers_and_the_value_as_pretty_json(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dead, case_id, value = letters.refused("forged-source", offset=5)
    dlq_id = await _write(producer, dead)

    result = await _dlq(kafka, "show", dlq_id)

    assert 0 == result.exit_code, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"dead letter {dlq_id} on ketenbus.dlq, written ")
    assert [
        "headers",
        "  ketenbus-reason: forged-source: as a test refuses it",
        "  ketenbus-reason-code: forged-source",
        f"  ketenbus-origin-topic: {UWV_OUTBOX}",
        "  ketenbus-origin-partition: 0",
        "  ketenbus-origin-offset: 5",
        "  ketenbus-rejected-by: router",
        "",
        f"key: {case_id}",
        "",
        "value (JSON):",
    ] == lines[2:13]
    pretty = json.dumps(json.loads(value), indent=2, ensure_ascii=False).splitlines()
    assert pretty == lines[13 : 13 + len(pretty)]
    assert "replays: none" == lines[-1]


async def test_show_prints_a_value_that_is_no_json_as_its_length_and_a_hex_preview(
    kafka: str, producer: AIOKafkaProducer
) -> None:
    key = str(uuid.uuid4()).encode()
    headers = {topics.DLQ_REASON_CODE: "malformed-json", topics.DLQ_ORIGIN_TOPIC: UWV_OUTBOX}
    dlq_id = await _write(producer, Outgoing(topics.DLQ, key, b"\xff\xfe" * 50, headers))

    result = await _dlq(kafka, "show", dlq_id, "--json")

    assert 0 == result.exit_code, result.output
    shown = json.loads(result.stdout)
    assert (100, "fffe" * 32, "malformed-json", []) == (
        shown["value_bytes"],
        shown["value_hex_preview"],
        shown["reason_code"],
        shown["replays"],
    )


async def test_replay_puts_the_original_value_and_key_back_on_the_outbox_as_a_replay(
    kafka: str,
    producer: AIOKafkaProducer,
    letters: Letters,
    logs: list[MutableMapping[str, Any]],
) -> None:
    dead, case_id, value = letters.refused("delivery-failed")
    dlq_id = await _write(producer, dead)
    event_id = json.loads(value)["id"]

    result = await _dlq(kafka, "replay", dlq_id)

    assert 0 == result.exit_code, result.output
    [replayed] = await _replays_of(kafka, dlq_id)
    assert (str(case_id).encode(), value, "application/cloudevents+json") == (
        replayed.key,
        replayed.value,
        headers_of(replayed)["content-type"],
    )
    assert (
        f"replayed {dlq_id} (reason delivery-failed, case {case_id}, event {event_id}) to "
        f"{UWV_OUTBOX} partition {replayed.partition} offset {replayed.offset}\n"
    ) == result.stdout
    [audit] = [entry for entry in logs if entry["event"] == "dead letter replayed"]
    assert (dlq_id, UWV_OUTBOX, "delivery-failed", str(case_id), event_id) == (
        audit["dlq_id"],
        audit["origin_topic"],
        audit["reason_code"],
        audit["case_id"],
        audit["event_id"],
    )
    assert value.decode() not in json.dumps(audit)


async def test_show_lists_the_replays_of_a_dead_letter(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dead, _, _ = letters.refused("delivery-failed")
    dlq_id = await _write(producer, dead)
    for _ in range(2):
        assert 0 == (await _dlq(kafka, "replay", dlq_id)).exit_code
    replays = await _replays_of(kafka, dlq_id, count=2)

    result = await _dlq(kafka, "show", dlq_id)

    assert 0 == result.exit_code, result.output
    history = result.stdout.splitlines()[-3:]
    assert "replays: 2" == history[0]
    assert sorted(f"partition {r.partition} offset {r.offset}:" for r in replays) == sorted(
        line.split(f"to {UWV_OUTBOX} ")[1].split(" not refused")[0] for line in history[1:]
    )


async def test_replay_of_a_redacted_dead_letter_is_refused_in_one_line(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dlq_id = await _write(producer, letters.redacted()[0])

    result = await _dlq(kafka, "replay", dlq_id)

    assert 1 == result.exit_code
    assert isinstance(result.exception, NotReplayable)
    assert (
        f"dead letter {dlq_id} cannot be replayed: its value is incomplete "
        "(data.context.personal removed, see ketenbus-redacted): the sender must send the "
        "event again"
    ) == str(result.exception)


async def test_replay_of_a_dead_letter_from_the_case_log_is_refused_in_one_line(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dlq_id = await _write(producer, letters.from_case_log()[0])

    result = await _dlq(kafka, "replay", dlq_id)

    assert 1 == result.exit_code
    assert isinstance(result.exception, NotReplayable)
    assert (
        f"dead letter {dlq_id} cannot be replayed: its origin ketenbus.cases is not an "
        "agency outbox"
    ) == str(result.exception)


async def test_replay_all_of_a_reason_replays_exactly_those_and_counts_the_refused(
    kafka: str,
    producer: AIOKafkaProducer,
    letters: Letters,
    logs: list[MutableMapping[str, Any]],
) -> None:
    code, other = _unique_code(), _unique_code()
    wanted = [await _write(producer, letters.refused(code)[0]) for _ in range(2)]
    redacted = await _write(producer, letters.redacted(code)[0])
    not_wanted = await _write(producer, letters.refused(other)[0])

    result = await _dlq(kafka, "replay", "--all-of", code)

    assert 0 == result.exit_code, result.output
    lines = result.stdout.splitlines()
    assert wanted == [line.split()[1] for line in lines[:2]]
    assert [
        f"replayed 2 dead letter(s) with reason {code}",
        "not replayed: 1 that cannot be replayed (1 because its value is incomplete "
        "(data.context.personal removed, see ketenbus-redacted): the sender must send the "
        "event again)",
    ] == lines[2:]
    assert {("dead letter replayed", i) for i in wanted} | {
        ("dead letter replay refused", redacted)
    } == {(e["event"], e["dlq_id"]) for e in logs if "dlq_id" in e and e["reason_code"] == code}
    for dlq_id in wanted:
        assert 1 == len(await _replays_of(kafka, dlq_id))
    for dlq_id in (redacted, not_wanted):
        assert [] == await read_to_end(
            kafka, [UWV_OUTBOX], lambda r, i=dlq_id: headers_of(r).get(REPLAY_OF) == i
        )


async def test_replay_all_of_a_reason_nobody_has_fails_in_one_line(kafka: str) -> None:
    code = _unique_code()

    result = await _dlq(kafka, "replay", "--all-of", code)

    assert 1 == result.exit_code
    assert str(result.exception).startswith(f"{code!r} is no reason code; the codes are: ")


async def test_listing_by_a_reason_code_no_refusal_gives_names_the_codes(kafka: str) -> None:
    result = await _dlq(kafka, "list", "--reason", "nosuch")

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith("'nosuch' is no reason code; the codes are: ")
    assert "malformed-json" in str(result.exception)


async def test_listing_by_a_known_reason_code_nobody_has_says_so() -> None:
    # A broker with no dead letters at all: every known code has none.
    with EmbeddedBroker(free_port()) as broker:
        await ensure_topics(broker.bootstrap, [topics.DLQ], partitions=1)
        result = await _dlq(broker.bootstrap, "list", "--reason", "wrong-key")

    assert 0 == result.exit_code, result.output
    assert "no dead letters with reason wrong-key\n" == result.output


async def test_show_of_an_id_not_on_the_topic_fails_in_one_line(kafka: str) -> None:
    result = await _dlq(kafka, "show", "0:999999999")

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert "no dead letter 0:999999999 on ketenbus.dlq" == str(result.exception)


async def test_replay_needs_an_id_or_a_reason_but_not_both(kafka: str) -> None:
    neither = await _dlq(kafka, "replay")
    both = await _dlq(kafka, "replay", "0:1", "--all-of", "wrong-key")

    assert [1, 1] == [neither.exit_code, both.exit_code]
    assert [str(neither.exception), str(both.exception)] == 2 * [
        "name one dead letter ID, or --all-of REASON (not both)"
    ]


async def test_an_unreachable_broker_is_reported_in_one_line() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    result = await _dlq(bootstrap, "list")

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?" == str(
        result.exception
    )


# --- A replay cannot loop --------------------------------------------------------------

FUTILE_MALFORMED = (
    "a replay sends the same bytes, so the router refuses it again as malformed-json "
    "(its value is not a JSON event object)"
)


async def test_replay_all_of_a_reason_no_replay_can_cure_is_refused_in_one_line(
    kafka: str, producer: AIOKafkaProducer, logs: list[MutableMapping[str, Any]]
) -> None:
    """`--all-of malformed-json` replays nothing, exits 1 naming why, and audits each refusal."""
    dlq_id = await _write(producer, _malformed())

    result = await _dlq(kafka, "replay", "--all-of", "malformed-json", "--force")

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    message = str(result.exception)
    assert message.startswith("not replaying the ")
    assert message.endswith(
        f" dead letter(s) with reason malformed-json: {FUTILE_MALFORMED}; replay one by ID, "
        "confirmed, if it must go again"
    )
    assert "\n" not in message
    assert [] == await read_to_end(
        kafka, [UWV_OUTBOX], lambda r: headers_of(r).get(REPLAY_OF) == dlq_id
    )
    assert [FUTILE_MALFORMED] == [
        e["why"]
        for e in logs
        if e["event"] == "dead letter replay refused" and e["dlq_id"] == dlq_id
    ]


async def test_replay_of_one_a_replay_cannot_cure_needs_force_when_no_one_can_be_asked(
    kafka: str, producer: AIOKafkaProducer, logs: list[MutableMapping[str, Any]]
) -> None:
    """Without a terminal, one malformed-json dead letter is refused in one line saying why and
    how to confirm; with --force it is replayed, and the audit says despite what."""
    dlq_id = await _write(producer, _malformed())

    refused = await _dlq(kafka, "replay", dlq_id)
    forced = await _dlq(kafka, "replay", dlq_id, "--force")

    assert (1, 0) == (refused.exit_code, forced.exit_code), forced.output
    assert isinstance(refused.exception, NeedsConfirmation)
    assert (
        f"dead letter {dlq_id} not replayed without confirmation: {FUTILE_MALFORMED}; "
        "confirm at the prompt, or pass --force"
    ) == str(refused.exception)
    [replayed] = await _replays_of(kafka, dlq_id)
    assert b"{not json" == replayed.value
    [audit] = [e for e in logs if e["event"] == "dead letter replayed" and e["dlq_id"] == dlq_id]
    assert FUTILE_MALFORMED == audit["confirmed_despite"]


@pytest.mark.usefixtures("at_a_terminal")
async def test_replay_of_one_a_replay_cannot_cure_asks_first_at_a_terminal(
    kafka: str, producer: AIOKafkaProducer
) -> None:
    """At a terminal the verb asks, saying why; no (the default) replays nothing, yes replays."""
    dlq_id = await _write(producer, _malformed())

    declined = await _dlq(kafka, "replay", dlq_id, answer="\n")
    before = await read_to_end(
        kafka, [UWV_OUTBOX], lambda r: headers_of(r).get(REPLAY_OF) == dlq_id
    )
    accepted = await _dlq(kafka, "replay", dlq_id, answer="y\n")

    assert (1, 0) == (declined.exit_code, accepted.exit_code), accepted.output
    assert isinstance(declined.exception, NeedsConfirmation)
    assert f"dead letter {dlq_id}: {FUTILE_MALFORMED}. Replay it anyway? [y/N]:" == (
        accepted.stderr.strip()
    )
    assert [] == before
    assert 1 == len(await _replays_of(kafka, dlq_id))


async def test_a_dead_letter_whose_refused_record_is_a_replay_is_known_from_its_outbox(
    kafka: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    """A dead letter without the replay header (as written before the router kept a record's
    headers) is still known as the refusal of a replay: its refused record on the outbox
    carries `ketenbus-replay-of`."""
    code = _unique_code()
    dead, case_id, value = letters.refused(code)
    earlier = await _write(producer, dead)
    replay = await producer.send_and_wait(
        UWV_OUTBOX, value, key=str(case_id).encode(), headers=[(REPLAY_OF, earlier.encode())]
    )
    headers = {
        **dead.headers,
        topics.DLQ_ORIGIN_PARTITION: str(replay.partition),
        topics.DLQ_ORIGIN_OFFSET: str(replay.offset),
    }
    again = await _write(producer, Outgoing(topics.DLQ, dead.key, dead.value, headers))

    single = await _dlq(kafka, "replay", again)
    bulk = await _dlq(kafka, "replay", "--all-of", code)

    assert (1, 0) == (single.exit_code, bulk.exit_code), bulk.output
    assert (
        f"dead letter {again} not replayed without confirmation: it is the refusal of an "
        f"earlier replay (of dead letter {earlier}): replaying it would replay a replay; "
        "replay the original instead; confirm at the prompt, or pass --force"
    ) == str(single.exception)
    lines = bulk.stdout.splitlines()
    assert [earlier] == _replayed_ids(bulk.stdout)
    assert (
        "not replayed: 1 held back (1 because it is the refusal of an earlier replay); "
        "--force replays the refusals of earlier replays too"
    ) == lines[-1]
    assert [] == await read_to_end(
        kafka, [UWV_OUTBOX], lambda r: headers_of(r).get(REPLAY_OF) == again
    )


@pytest.fixture
async def router(
    kafka: str, settings: Settings, signed_registry: AgencyRegistry, tmp_path: Any
) -> AsyncIterator[str]:
    """A router on the embedded broker (its own group, from the outboxes' current end), with
    the test keys in its registry and a fresh SQLite store; the bootstrap address."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'ketenbus.db'}")
    await migrate(engine)
    group = f"router-test-{uuid.uuid4()}"
    outboxes = [topics.outbox(agency.code) for agency in signed_registry.agencies]
    await start_group_at_end(kafka, group, outboxes)
    broker = create_router(settings, signed_registry, kafka, engine, group_id=group)
    await broker.start()
    try:
        yield kafka
    finally:
        await broker.stop()
        await engine.dispose()


async def _refused_twice(
    router: str, producer: AIOKafkaProducer, letters: Letters
) -> tuple[str, str, uuid.UUID]:
    """An event the router refuses as unknown-key, and the router's refusal of its replay:
    the two dead letters' IDs and the case."""
    case_id = uuid.uuid4()
    unregistered = AgencyKeys.generate("uwv")
    value = unregistered.sign(letters.make.opened(case_id, by="uwv"))
    await producer.send_and_wait(UWV_OUTBOX, value, key=str(case_id).encode())
    [first] = await read_until(router, topics.DLQ, keyed(case_id), timeout=20)
    original = f"{first.partition}:{first.offset}"
    assert 0 == (await _dlq(router, "replay", original)).exit_code
    dead = await read_until(router, topics.DLQ, keyed(case_id), count=2, timeout=20)
    assert 2 == len(dead), "the router did not refuse the replay"
    [again] = [r for r in dead if (r.partition, r.offset) != (first.partition, first.offset)]
    assert ["unknown-key", "unknown-key"] == [headers_of(r)[topics.DLQ_REASON_CODE] for r in dead]
    # The router keeps the replayed record's headers on its dead letter, the replay mark too.
    assert original == headers_of(again).get(REPLAY_OF)
    return original, f"{again.partition}:{again.offset}", case_id


async def test_replay_all_of_a_reason_replays_the_original_again_but_not_its_replays_refusal(
    router: str, producer: AIOKafkaProducer, letters: Letters
) -> None:
    """After the router refused a replay, `--all-of` that reason replays the original once
    more, and holds back the dead letter of the replay: a replay never replays a replay."""
    original, again, _ = await _refused_twice(router, producer, letters)

    result = await _dlq(router, "replay", "--all-of", "unknown-key")

    assert 0 == result.exit_code, result.output
    replayed = _replayed_ids(result.stdout)
    assert original in replayed
    assert again not in replayed
    assert "--force replays the refusals of earlier replays too" in result.stdout.splitlines()[-1]
    assert 2 == len(await _replays_of(router, original, count=2))
    assert [] == await read_to_end(
        router, [UWV_OUTBOX], lambda r: headers_of(r).get(REPLAY_OF) == again
    )


async def test_replay_of_the_refusal_of_a_replay_is_replayed_only_when_confirmed(
    router: str,
    producer: AIOKafkaProducer,
    letters: Letters,
    logs: list[MutableMapping[str, Any]],
) -> None:
    """The router's refusal of a replay is replayed by ID only with --force (or a yes at the
    prompt), and the audit says it was a replay of a replay."""
    original, again, _ = await _refused_twice(router, producer, letters)

    refused = await _dlq(router, "replay", again)
    forced = await _dlq(router, "replay", again, "--force")

    assert (1, 0) == (refused.exit_code, forced.exit_code), forced.output
    why = (
        f"it is the refusal of an earlier replay (of dead letter {original}): replaying it "
        "would replay a replay; replay the original instead"
    )
    assert (
        f"dead letter {again} not replayed without confirmation: {why}; confirm at the "
        "prompt, or pass --force"
    ) == str(refused.exception)
    assert 1 == len(await _replays_of(router, again))
    [refusal] = [
        e for e in logs if e["event"] == "dead letter replay refused" and e["dlq_id"] == again
    ]
    [audit] = [e for e in logs if e["event"] == "dead letter replayed" and e["dlq_id"] == again]
    assert (why, why) == (refusal["why"], audit["confirmed_despite"])
