"""The case tracer: a case's state, timeline, escalations and audit trail, for operators only.

The store is the console's own SQLite database with real events applied by the
tracker's ledger and real audit records appended to the chain, as the tracker
and the router write them.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest

from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry
from services.audit import append
from services.runtime.store.engine import write_transaction
from services.tracker.ledger import apply_batch
from tests._testutil import PERSONAL_NAME, EventFactory
from tests.services.audit.entries import entry
from tests.services.console.conftest import ConsoleHarness

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def _case(console: ConsoleHarness, registry: AgencyRegistry) -> tuple[UUID, UUID, UUID]:
    """A case uwv opened and asked svb to take over, escalated once, delivered to svb twice.

    Returns the case, handoff and escalation ids.
    """
    make = EventFactory(registry)
    case_id, handoff_id, escalation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events: list[CaseEvent[Any]] = [
        make.opened(case_id, by="uwv"),
        make.requested(case_id, handoff_id, "uwv", "svb"),
        make.escalation_raised(case_id, escalation_id, level=2, agency_pair=("uwv", "svb")),
    ]
    await apply_batch(console.state.engine, registry, events)
    async with write_transaction(console.state.engine) as connection:
        await append(
            connection,
            [
                entry(case_id, receiver="svb", minute=1, fields=("actions", "personal")),
                entry(case_id, receiver="gm0363", minute=2, event_type="escalation-raised"),
            ],
            chain="router/test",
        )
    return case_id, handoff_id, escalation_id


async def test_the_case_api_gives_holder_status_pending_handoff_timeline_escalations_and_audit(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    case_id, handoff_id, escalation_id = await _case(console, registry)
    operator = await console.operator()

    response = await operator.get(f"/api/cases/{case_id}")

    assert 200 == response.status_code, response.text
    body = response.json()
    assert (str(case_id), "uwv", "open") == (body["case_id"], body["holder"], body["status"])
    assert {"handoff_id": str(handoff_id), "from_agency": "uwv", "to_agency": "svb"} == {
        key: body["pending_handoff"][key] for key in ("handoff_id", "from_agency", "to_agency")
    }
    assert ["case-opened", "handoff-requested", "escalation-raised"] == [
        e["type"] for e in body["timeline"]
    ]
    [escalation] = body["escalations"]
    assert (str(escalation_id), 2, "raised", "gm0363/regionaal-escalatieteam") == (
        escalation["escalation_id"],
        escalation["level"],
        escalation["status"],
        escalation["team"],
    )
    assert [
        ("svb", "handoff-requested", ["actions", "personal"], "Participatiewet art. 64"),
        ("gm0363", "escalation-raised", ["actions", "personal"], "Participatiewet art. 64"),
    ] == [(a["receiver"], a["event_type"], a["fields"], a["legal_basis"]) for a in body["audit"]]
    assert None is body["audit_error"]
    assert PERSONAL_NAME not in response.text


async def test_the_case_page_has_every_tracer_hook_and_no_personal_data(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    case_id, _, _ = await _case(console, registry)
    operator = await console.operator()

    page = await operator.get(f"/cases/{case_id}")

    assert 200 == page.status_code, page.text
    html = page.text
    for hook in ("case-holder", "case-status", "case-pending"):
        assert f'data-testid="{hook}"' in html, hook
    assert 3 == html.count('data-testid="timeline-entry"')
    assert 'data-type="handoff-requested"' in html
    assert 1 == html.count('data-testid="case-escalation"')
    assert 2 == html.count('data-testid="audit-entry"')
    assert "Participatiewet art. 64" in html
    assert PERSONAL_NAME not in html


async def test_the_search_form_has_its_hooks_and_sends_a_case_id_to_its_page(
    console: ConsoleHarness, registry: AgencyRegistry
) -> None:
    case_id, _, _ = await _case(console, registry)
    operator = await console.operator()

    form = await operator.get("/cases")
    found = await operator.get("/cases", params={"case_id": f" {case_id} "})

    assert 200 == form.status_code
    assert 'data-testid="case-search"' in form.text
    assert 'name="case_id"' in form.text
    assert 'data-testid="case-search-submit"' in form.text
    assert str(case_id) in form.text  # among the most recently active cases
    assert (303, f"/cases/{case_id}") == (found.status_code, found.headers["location"])


async def test_an_unknown_case_is_404_on_the_api_and_the_page(console: ConsoleHarness) -> None:
    operator = await console.operator()
    unknown = uuid.uuid4()

    api = await operator.get(f"/api/cases/{unknown}")
    page = await operator.get(f"/cases/{unknown}")
    not_an_id = await operator.get("/api/cases/not-a-uuid")

    assert 404 == api.status_code
    assert {"error": f"unknown case {unknown}: the tracker has recorded no event for it"} == (
        api.json()
    )
    assert 404 == page.status_code
    assert 404 == not_an_id.status_code
    assert "error" in not_an_id.json()


async def test_a_search_for_something_that_is_no_case_id_says_so(console: ConsoleHarness) -> None:
    operator = await console.operator()

    response = await operator.get("/cases", params={"case_id": "zaak-12"})

    assert 400 == response.status_code
    assert "is not a case id" in response.text


@pytest.mark.parametrize("path", ["/cases", "/cases/{case_id}", "/api/cases/{case_id}"])
async def test_a_team_member_is_refused_the_tracer(console: ConsoleHarness, path: str) -> None:
    member = await console.member()

    response = await member.get(path.format(case_id=uuid.uuid4()))

    assert 403 == response.status_code


async def test_unauthenticated_the_case_api_is_401(console: ConsoleHarness) -> None:
    response = await console.client().get(f"/api/cases/{uuid.uuid4()}")

    assert 401 == response.status_code
    assert "error" in response.json()
