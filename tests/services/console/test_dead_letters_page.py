"""Dead letters in the console: browse, inspect, and replay with confirmation (operators only).

Against the session's embedded broker. Other tests share `ketenbus.dlq`, so each
test writes dead letters of its own (fresh cases, a reason code of its own
where it filters) and looks only at those. The dead letters are the router's
own refusals (`Letters`, shared with `ketenbus dlq`'s tests).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.dead_letters import REPLAY_OF
from services.runtime.kafka.clients import Outgoing
from tests._testutil import headers_of, read_until
from tests.services.cli.test_dlq_cmd import Letters
from tests.services.console.conftest import ConsoleHarness
from tests.services.router.events import BSN, CITIZEN

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

UWV_OUTBOX = topics.outbox("uwv")


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """What the console logs: the dead letters' audit among it."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def letters(signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]) -> Letters:
    return Letters(signed_registry, agency_keys)


async def _write(producer: AIOKafkaProducer, dead: Outgoing) -> tuple[int, int]:
    """Produce a dead letter as the router would; its partition and offset."""
    meta = await producer.send_and_wait(
        dead.topic,
        dead.value,
        key=dead.key,
        headers=[(name, value.encode()) for name, value in dead.headers.items()],
    )
    return meta.partition, meta.offset


async def test_the_list_gives_reason_source_time_and_case_but_never_the_value(
    console: ConsoleHarness, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dead, case_id, value = letters.refused("unauthorised-type")
    partition, offset = await _write(producer, dead)
    operator = await console.operator()

    api = await operator.get("/api/dead-letters", params={"reason": "unauthorised-type"})
    page = await operator.get("/dead-letters")

    assert 200 == api.status_code, api.text
    [shown] = [d for d in api.json()["dead_letters"] if d["id"] == f"{partition}:{offset}"]
    assert ("unauthorised-type", UWV_OUTBOX, str(case_id), partition, offset) == (
        shown["reason_code"],
        shown["origin_topic"],
        shown["case_id"],
        shown["partition"],
        shown["offset"],
    )
    assert shown["time"]
    assert "value" not in shown
    assert json.loads(value)["data"]["summary"] not in api.text
    assert {"reason": "unauthorised-type", "count": api.json()["total"]} in api.json()["counts"]
    assert 200 == page.status_code
    row = f'data-testid="dead-letter" data-partition="{partition}" data-offset="{offset}"'
    assert row in page.text
    assert f'href="/dead-letters/{partition}/{offset}"' in page.text


async def test_the_detail_shows_the_headers_and_the_value_as_the_dead_letter_code_renders_it(
    console: ConsoleHarness, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dead, case_id, value = letters.refused("delivery-failed")
    partition, offset = await _write(producer, dead)
    operator = await console.operator()

    api = await operator.get(f"/api/dead-letters/{partition}/{offset}")
    page = await operator.get(f"/dead-letters/{partition}/{offset}")

    assert 200 == api.status_code, api.text
    body = api.json()
    assert ("delivery-failed", json.loads(value), True, None, []) == (
        body["reason_code"],
        body["value"],
        body["replayable"],
        body["not_replayable_because"],
        body["replays"],
    )
    assert {"name": topics.DLQ_REASON_CODE, "value": "delivery-failed"} in body["headers"]
    assert 200 == page.status_code
    for hook in (
        "dead-letter-reason",
        "replay",
        "replay-confirm",
        "replay-cancel",
        "replay-result",
    ):
        assert f'data-testid="{hook}"' in page.text, hook
    assert "<dialog" in page.text
    assert '<script src="/static/dead_letters.js"' in page.text
    assert str(case_id) in page.text


async def test_the_replay_dialog_says_why_a_replay_of_a_hopeless_refusal_would_fail_again(
    console: ConsoleHarness, producer: AIOKafkaProducer, letters: Letters
) -> None:
    """A bad signature stays bad: the dialog warns before the operator confirms; a
    refusal a replay may mend (delivery-failed) has no such warning."""
    hopeless, _, _ = letters.refused("bad-signature")
    mendable, _, _ = letters.refused("delivery-failed")
    hopeless_at, mendable_at = await _write(producer, hopeless), await _write(producer, mendable)
    operator = await console.operator()

    api = await operator.get("/api/dead-letters/{}/{}".format(*hopeless_at))
    warned = await operator.get("/dead-letters/{}/{}".format(*hopeless_at))
    plain = await operator.get("/dead-letters/{}/{}".format(*mendable_at))

    caution = api.json()["replay_caution"]
    assert caution
    assert (200, 200) == (warned.status_code, plain.status_code)
    assert 'data-testid="replay-caution"' in warned.text
    assert html.escape(caution, quote=False) in warned.text
    assert 'data-testid="replay-caution"' not in plain.text


async def test_a_redacted_dead_letter_shows_no_personal_data_and_no_replay_button(
    console: ConsoleHarness, producer: AIOKafkaProducer, letters: Letters
) -> None:
    dead, _ = letters.redacted()
    partition, offset = await _write(producer, dead)
    operator = await console.operator()

    api = await operator.get(f"/api/dead-letters/{partition}/{offset}")
    page = await operator.get(f"/dead-letters/{partition}/{offset}")

    assert (False, "data.context.personal") == (api.json()["replayable"], api.json()["redacted"])
    for text in (api.text, page.text):
        assert BSN not in text
        assert CITIZEN not in text
    assert 'data-testid="replay"' not in page.text
    assert "Cannot be replayed" in page.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"{}", "application/json"),
        (b'{"confirm": false}', "application/json"),
        (b'{"confirm": "yes"}', "application/json"),
        (b"not json", "application/json"),
        (b'{"confirm": true}', "text/plain"),
    ],
)
async def test_a_replay_without_confirmation_is_400_and_replays_nothing(
    console: ConsoleHarness,
    producer: AIOKafkaProducer,
    letters: Letters,
    body: bytes,
    content_type: str,
) -> None:
    dead, _, _ = letters.refused("delivery-failed")
    partition, offset = await _write(producer, dead)
    operator = await console.operator()

    response = await operator.post(
        f"/api/dead-letters/{partition}/{offset}/replay",
        content=body,
        headers={"content-type": content_type},
    )

    assert 400 == response.status_code
    assert {"error": 'confirm the replay: send JSON {"confirm": true}'} == response.json()


async def test_a_confirmed_replay_puts_the_record_back_on_its_outbox_and_is_audited(
    console: ConsoleHarness,
    kafka: str,
    producer: AIOKafkaProducer,
    letters: Letters,
    logs: list[MutableMapping[str, Any]],
) -> None:
    dead, case_id, value = letters.refused("delivery-failed")
    partition, offset = await _write(producer, dead)
    dlq_id = f"{partition}:{offset}"
    operator = await console.operator()

    response = await operator.post(
        f"/api/dead-letters/{partition}/{offset}/replay", json={"confirm": True}
    )

    assert 200 == response.status_code, response.text
    body = response.json()
    [replayed] = await read_until(
        kafka, UWV_OUTBOX, lambda r: headers_of(r).get(REPLAY_OF) == dlq_id, timeout=10
    )
    assert (dlq_id, UWV_OUTBOX, replayed.partition, replayed.offset) == (
        body["replayed"],
        body["topic"],
        body["partition"],
        body["offset"],
    )
    assert (str(case_id).encode(), value) == (replayed.key, replayed.value)
    [audit] = [entry for entry in logs if entry["event"] == "dead letter replayed"]
    assert ("operator", dlq_id, "delivery-failed", str(case_id)) == (
        audit["operator"],
        audit["dlq_id"],
        audit["reason_code"],
        audit["case_id"],
    )
    assert value.decode() not in json.dumps(audit)


async def test_a_replay_of_a_redacted_dead_letter_is_409_and_the_refusal_audited(
    console: ConsoleHarness,
    producer: AIOKafkaProducer,
    letters: Letters,
    logs: list[MutableMapping[str, Any]],
) -> None:
    dead, _ = letters.redacted()
    partition, offset = await _write(producer, dead)
    operator = await console.operator()

    response = await operator.post(
        f"/api/dead-letters/{partition}/{offset}/replay", json={"confirm": True}
    )

    assert 409 == response.status_code
    assert "cannot be replayed" in response.json()["error"]
    [refusal] = [entry for entry in logs if entry["event"] == "dead letter replay refused"]
    assert ("operator", f"{partition}:{offset}") == (refusal["operator"], refusal["dlq_id"])


async def test_a_dead_letter_not_on_the_topic_is_404(console: ConsoleHarness) -> None:
    operator = await console.operator()

    api = await operator.get("/api/dead-letters/0/999999999")
    page = await operator.get("/dead-letters/0/999999999")
    replay = await operator.post("/api/dead-letters/0/999999999/replay", json={"confirm": True})

    assert (404, 404, 404) == (api.status_code, page.status_code, replay.status_code)
    assert {"error": f"no dead letter 0:999999999 on {topics.DLQ}"} == api.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dead-letters"),
        ("GET", "/dead-letters/0/0"),
        ("GET", "/api/dead-letters"),
        ("GET", "/api/dead-letters/0/0"),
        ("POST", "/api/dead-letters/0/0/replay"),
    ],
)
async def test_a_team_member_is_refused_the_dead_letters(
    console: ConsoleHarness, method: str, path: str
) -> None:
    member = await console.member()

    response = await member.request(method, path, json={"confirm": True})

    assert 403 == response.status_code


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/dead-letters"), ("POST", "/api/dead-letters/0/0/replay")],
)
async def test_unauthenticated_the_dead_letter_api_is_401(
    console: ConsoleHarness, method: str, path: str
) -> None:
    response = await console.client().request(method, path, json={"confirm": True})

    assert 401 == response.status_code
