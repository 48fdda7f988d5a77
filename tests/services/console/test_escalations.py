"""The escalation board's API, live stream and each role's limits, on the real broker.

Rows are inserted in the escalation service's `escalations` table where the
behaviour is the console's alone (who sees what, which action is refused);
the round trip from an action to a changed status runs the real escalation
service on the console's store.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from contracts import topics
from contracts.case import CaseContext, CaseFlag, EscalationLevel, EscalationPath
from contracts.envelope import source_urn
from contracts.events import CaseOpened, CaseOpening
from contracts.parse import parse_event
from services.escalation import EscalationService
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import free_port
from services.runtime.store.tables import escalation_cases, escalations
from tests._testutil import keyed, read_until
from tests.services.console.conftest import CREDENTIALS, TEAM, ConsoleHarness

pytestmark = pytest.mark.broker

OTHER_TEAM = "gm0363/schuldhulp-teamleiding"
TOKEN = CREDENTIALS.token


async def insert_escalation(
    engine: AsyncEngine, *, team: str = TEAM, status: str = "raised", level: int = 1
) -> dict[str, UUID]:
    """One escalation (and its case) as the escalation service would have stored it."""
    case_id, escalation_id, correlation_id, raised_id = (uuid.uuid4() for _ in range(4))
    agency, team_code = team.split("/")
    now = datetime.now(UTC)
    closed = status in ("resolved", "withdrawn")
    async with engine.begin() as connection:
        await connection.execute(
            insert(escalation_cases).values(
                case_id=case_id,
                category="schulden",
                holder="belastingdienst",
                holders=["belastingdienst"],
                status="open",
                rejections=0,
                rejections_escalated=0,
                correlation_id=correlation_id,
                sequence=1,
                opened_at=now - timedelta(hours=2),
                last_event_at=now - timedelta(hours=1),
            )
        )
        await connection.execute(
            insert(escalations).values(
                escalation_id=escalation_id,
                case_id=case_id,
                trigger="handoff-expired",
                cause="handoff belastingdienst -> gm0363 unanswered",
                level=level,
                team_agency=agency,
                team=team_code,
                status=status,
                raised_at=now - timedelta(hours=1),
                alerted_at=now - timedelta(hours=1),
                acknowledge_by=now + timedelta(hours=7),
                raises=1,
                last_raised_id=raised_id,
                acknowledged_at=now if status == "acknowledged" else None,
                resolved_at=now if closed else None,
                outcome="other" if status == "resolved" else None,
            )
        )
    return {
        "case_id": case_id,
        "escalation_id": escalation_id,
        "correlation_id": correlation_id,
        "raised_id": raised_id,
    }


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """`app` (its lifespan already running) on a free loopback port; the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("uvicorn did not start in 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, parsed data) for each server-sent event of a streaming response."""
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


async def next_matching(
    events: AsyncIterator[tuple[str, Any]], event: str, escalation_id: UUID, status: str
) -> dict[str, Any]:
    async with asyncio.timeout(20):
        async for name, data in events:
            if (name, data["escalation_id"], data["status"]) == (event, str(escalation_id), status):
                return dict(data)
    raise AssertionError(f"the stream ended before {escalation_id} became {status}")


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["escalation_id"] for item in items}


async def test_a_team_member_lists_its_own_teams_escalations_an_operator_all(
    console: ConsoleHarness,
) -> None:
    engine = console.state.engine
    mine = await insert_escalation(engine)
    theirs = await insert_escalation(engine, team=OTHER_TEAM)
    done = await insert_escalation(engine, status="resolved")

    member = await (await console.member()).get("/api/escalations")
    operator = await (await console.operator()).get("/api/escalations")
    everything = await console.client(token=True).get("/api/escalations?status=all")

    assert {str(mine["escalation_id"])} == ids(member.json())
    assert {str(mine["escalation_id"]), str(theirs["escalation_id"])} <= ids(operator.json())
    assert str(done["escalation_id"]) not in ids(operator.json())
    assert {str(mine["escalation_id"]), str(done["escalation_id"])} == ids(everything.json())
    [item] = member.json()
    assert (TEAM, "raised", 1, "handoff-expired") == (
        item["team"],
        item["status"],
        item["level"],
        item["trigger"],
    )
    assert 3500 <= item["age_s"] <= 3700


async def test_a_status_other_than_open_or_all_is_a_400(console: ConsoleHarness) -> None:
    response = await console.client(token=True).get("/api/escalations?status=closed")

    assert 400 == response.status_code
    assert "status must be open or all" == response.json()["error"]


async def test_the_board_page_shows_the_rows_with_their_hooks_and_forms_for_a_team(
    console: ConsoleHarness,
) -> None:
    mine = await insert_escalation(console.state.engine)

    member = await (await console.member()).get("/escalations")
    operator = await (await console.operator()).get("/escalations")

    assert 200 == member.status_code
    hook = f'data-escalation-id="{mine["escalation_id"]}" data-status="raised"'
    assert hook in member.text
    for testid in ("acknowledge", "acknowledge-submit", "resolve", "resolve-submit"):
        assert f'data-testid="{testid}"' in member.text
    assert hook in operator.text
    assert 'data-testid="acknowledge"' not in operator.text  # read-only for operators


async def test_unauthenticated_callers_see_and_do_nothing(console: ConsoleHarness) -> None:
    mine = await insert_escalation(console.state.engine)
    anonymous = console.client()
    url = f"/api/escalations/{mine['escalation_id']}/acknowledge"

    assert 401 == (await anonymous.get("/api/escalations")).status_code
    assert 401 == (await anonymous.get("/api/stream/escalations")).status_code
    assert 401 == (await anonymous.post(url, json={})).status_code


async def test_an_operator_may_not_acknowledge_or_resolve(console: ConsoleHarness) -> None:
    mine = await insert_escalation(console.state.engine)
    operator = await console.operator()
    base = f"/api/escalations/{mine['escalation_id']}"

    acked = await operator.post(f"{base}/acknowledge", json={"note": None})
    resolved = await operator.post(f"{base}/resolve", json={"outcome": "other"})

    assert (403, 403) == (acked.status_code, resolved.status_code)
    assert "read-only" in acked.json()["error"]


async def test_actions_on_unknown_other_teams_and_closed_escalations_are_refused(
    console: ConsoleHarness,
) -> None:
    engine = console.state.engine
    theirs = await insert_escalation(engine, team=OTHER_TEAM)
    done = await insert_escalation(engine, status="resolved")
    acked = await insert_escalation(engine, status="acknowledged")
    member = console.client(token=True)

    unknown = await member.post(f"/api/escalations/{uuid.uuid4()}/acknowledge", json={})
    not_an_id = await member.post("/api/escalations/nope/acknowledge", json={})
    other = await member.post(f"/api/escalations/{theirs['escalation_id']}/acknowledge", json={})
    closed = await member.post(
        f"/api/escalations/{done['escalation_id']}/resolve", json={"outcome": "other"}
    )
    twice = await member.post(f"/api/escalations/{acked['escalation_id']}/acknowledge", json={})

    assert [404, 404, 403, 409, 409] == [
        r.status_code for r in (unknown, not_an_id, other, closed, twice)
    ]
    assert f"escalation {done['escalation_id']} is already resolved" == closed.json()["error"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"outcome": "sorted"}, "outcome must be one of"),
        ({}, "outcome must be one of"),
        ({"outcome": "handoff-forced"}, "outcome handoff-forced needs handoff_to"),
        ({"outcome": "handoff-forced", "handoff_to": "nowhere"}, "not an agency"),
        ({"outcome": "other", "handoff_to": "gm0363"}, "only with outcome handoff-forced"),
        ({"outcome": "other", "note": 3}, "note must be a string"),
    ],
)
async def test_a_resolution_without_a_valid_outcome_is_a_400(
    console: ConsoleHarness, body: dict[str, Any], error: str
) -> None:
    mine = await insert_escalation(console.state.engine)
    url = f"/api/escalations/{mine['escalation_id']}/resolve"

    response = await console.client(token=True).post(url, json=body)

    assert 400 == response.status_code
    assert error in response.json()["error"]


async def test_an_acknowledgement_is_an_event_on_the_case_log_in_the_teams_name(
    console: ConsoleHarness, kafka: str
) -> None:
    mine = await insert_escalation(console.state.engine)
    url = f"/api/escalations/{mine['escalation_id']}/acknowledge"

    response = await (await console.member()).post(url, json={"note": "Wij bellen"})

    assert 202 == response.status_code
    [record] = await read_until(kafka, topics.CASES, keyed(mine["case_id"]))
    event = parse_event(record.value or b"")
    operator_oin = console.state.registry.operator.oin
    assert str(event.id) == response.json()["event_id"]
    assert source_urn(operator_oin, "ketenbus-console") == event.source
    assert "escalation-acknowledged" == event.name
    assert (TEAM, 1, "Wij bellen") == (
        f"{event.data.team.agency}/{event.data.team.team}",
        event.data.level,
        event.data.note,
    )
    assert (mine["correlation_id"], mine["raised_id"]) == (event.correlationid, event.causationid)


async def test_the_stream_sends_a_snapshot_then_each_change_of_the_teams_escalations(
    console: ConsoleHarness,
) -> None:
    engine = console.state.engine
    mine = await insert_escalation(engine)
    async with (
        served(console.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
        client.stream("GET", "/api/stream/escalations") as response,
    ):
        events = sse_events(response)
        name, snapshot = await anext(events)
        later = await insert_escalation(engine, level=2)
        await insert_escalation(engine, team=OTHER_TEAM)  # not this team's: never sent
        change = await next_matching(events, "escalation", later["escalation_id"], "raised")

    assert "snapshot" == name
    assert {str(mine["escalation_id"])} == ids(snapshot)
    assert (2, TEAM) == (change["level"], change["team"])


async def test_a_team_is_told_once_when_its_escalation_climbs_past_it(
    console: ConsoleHarness,
) -> None:
    engine = console.state.engine
    mine = await insert_escalation(engine)
    async with (
        served(console.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
        client.stream("GET", "/api/stream/escalations") as response,
    ):
        events = sse_events(response)
        await anext(events)
        climbed = (
            update(escalations)
            .where(escalations.c.escalation_id == mine["escalation_id"])
            .values(level=2, team_agency="gm0363", team="regionaal-escalatieteam")
        )
        async with engine.begin() as connection:
            await connection.execute(climbed)
        change = await next_matching(events, "escalation", mine["escalation_id"], "raised")

    assert (2, "gm0363/regionaal-escalatieteam") == (change["level"], change["team"])


async def test_an_action_reaches_the_board_once_the_escalation_service_applied_it(
    console: ConsoleHarness, kafka: str, settings: Settings
) -> None:
    """The whole round trip: the service raises, the team acknowledges and resolves."""
    state = console.state
    service = EscalationService(
        settings, state.registry, state.engine, kafka, group_id=f"escalation-{uuid.uuid4()}"
    )
    await service.start()
    try:
        case_id = await _open_hardship_case(kafka, state.registry.agency("belastingdienst"))
        member = console.client(token=True)
        escalation_id = await _raised_for(member, case_id)
        async with (
            served(console.app) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as live,
            live.stream("GET", "/api/stream/escalations") as response,
        ):
            events = sse_events(response)
            _, snapshot = await anext(events)
            base = f"/api/escalations/{escalation_id}"
            acked = await member.post(f"{base}/acknowledge", json={"note": None})
            acknowledged = await next_matching(events, "escalation", escalation_id, "acknowledged")
            resolved_reply = await member.post(f"{base}/resolve", json={"outcome": "other"})
            resolved = await next_matching(events, "escalation", escalation_id, "resolved")
        again = await member.post(f"{base}/resolve", json={"outcome": "other"})
    finally:
        await service.stop()

    assert str(escalation_id) in ids(snapshot)
    assert (202, 202, 409) == (acked.status_code, resolved_reply.status_code, again.status_code)
    assert acknowledged["acknowledged_at"] is not None
    assert ("other", 1) == (resolved["outcome"], resolved["level"])


async def _open_hardship_case(kafka: str, agency: Any) -> UUID:
    """A case of belastingdienst whose own path starts at its team, flagged at level 1."""
    case_id = uuid.uuid4()
    path = EscalationPath(
        levels=[
            EscalationLevel(
                level=1,
                agency="belastingdienst",
                team="inning-teamleiding",
                acknowledge_within=timedelta(days=1),
            ),
            EscalationLevel(
                level=2,
                agency="gm0363",
                team="regionaal-escalatieteam",
                acknowledge_within=timedelta(days=1),
            ),
        ]
    )
    flag = CaseFlag(
        kind="hardship",
        raised_by="belastingdienst",
        escalate_at_level=1,
        note="Dreigende huisuitzetting",
        rule_reference="Wgs art. 3",
    )
    data = CaseOpening(
        category="schulden",
        summary="Schuldhulptraject",
        context=CaseContext(flags=[flag]),
        escalation_path=path,
    )
    event = CaseOpened.new(source=source_urn(agency.oin, "zaaksysteem"), case_id=case_id, data=data)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.CASES, event.to_json(), key=str(case_id).encode())
    finally:
        await producer.stop()
    return case_id


async def _raised_for(client: httpx.AsyncClient, case_id: UUID) -> UUID:
    """The escalation the service raised for the case, once the board lists it."""
    for _ in range(300):
        listed = (await client.get("/api/escalations")).json()
        found = [item for item in listed if item["case_id"] == str(case_id)]
        if found:
            return UUID(found[0]["escalation_id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no escalation raised for case {case_id} in 30 s")
