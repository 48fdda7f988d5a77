"""The policy-signals page and API: issue 3's report from the store, with a server-drawn chart."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest

from contracts.envelope import CaseEvent
from contracts.events import EscalationTrigger
from contracts.registry import AgencyRegistry
from services.console._chart import bar_chart
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory
from tests.services.console.conftest import ConsoleHarness

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def _escalated(console: ConsoleHarness, registry: AgencyRegistry) -> None:
    """Two ping-pong escalations (one resolved) and one hardship escalation, on three cases."""
    make = EventFactory(registry)
    events: list[CaseEvent[Any]] = []
    resolved = uuid.uuid4()
    causes: tuple[tuple[EscalationTrigger, UUID], ...] = (
        ("ping-pong", resolved),
        ("ping-pong", uuid.uuid4()),
        ("hardship", uuid.uuid4()),
    )
    for trigger, escalation_id in causes:
        case_id = uuid.uuid4()
        events += [
            make.opened(case_id, by="uwv"),
            make.escalation_raised(
                case_id, escalation_id, trigger=trigger, agency_pair=("uwv", "svb")
            ),
        ]
        if escalation_id == resolved:
            events.append(make.escalation_resolved(case_id, escalation_id))
    await apply_batch(console.state.engine, registry, events)


async def test_the_signals_api_is_the_policy_signals_report(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    await _escalated(console, registry)
    operator = await console.operator()

    response = await operator.get("/api/signals")

    assert 200 == response.status_code, response.text
    body = response.json()
    assert 3 == body["escalations"]
    assert [("ping-pong", 2, 1), ("hardship", 1, 0)] == [
        (c["cause"], c["escalations"], c["resolution"]["resolved"]) for c in body["by_cause"]
    ]
    assert [{"key": "uwv>svb", "escalations": 3}] == body["by_agency_pair"]
    assert [{"level": 2, "open": 2}] == body["open_by_level"]
    assert {"since", "as_of", "resolution", "by_rule", "stuck_longest"} <= body.keys()


async def test_the_signals_page_has_an_accessible_svg_chart_of_escalations_by_cause(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    await _escalated(console, registry)
    operator = await console.operator()

    page = await operator.get("/signals")

    assert 200 == page.status_code, page.text
    html = page.text
    start = html.index(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" data-testid="signals-chart"'
    )
    svg = html[start : html.index("</svg>", start)]
    assert "<title" in svg
    assert "Escalations by cause</title>" in svg
    assert ">ping-pong</text>" in svg
    assert ">hardship</text>" in svg
    assert ">2</text>" in svg


async def test_a_since_that_is_no_date_is_400(console: ConsoleHarness) -> None:
    operator = await console.operator()

    api = await operator.get("/api/signals", params={"since": "yesterday"})
    page = await operator.get("/signals", params={"since": "yesterday"})

    assert 400 == api.status_code
    assert {"error": "--since 'yesterday' is not a date; give it as YYYY-MM-DD"} == api.json()
    assert 400 == page.status_code


def test_the_chart_escapes_its_labels_and_names_every_bar_in_its_description() -> None:
    svg = str(bar_chart("By <cause>", [("<script>", 3), ("idle", 1)], chart_id="c", testid="t"))

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert '<desc id="c-desc">&lt;script&gt;: 3; idle: 1</desc>' in svg
    assert 2 == svg.count("<rect ")


def test_an_empty_chart_says_there_is_no_data() -> None:
    svg = str(bar_chart("Nothing", [], chart_id="c", testid="t"))

    assert ">No data</text>" in svg
    assert 0 == svg.count("<rect ")


@pytest.mark.parametrize("path", ["/signals", "/api/signals"])
async def test_a_team_member_is_refused_the_signals(console: ConsoleHarness, path: str) -> None:
    member = await console.member()

    assert 403 == (await member.get(path)).status_code


async def test_unauthenticated_the_signals_api_is_401(console: ConsoleHarness) -> None:
    assert 401 == (await console.client().get("/api/signals")).status_code
