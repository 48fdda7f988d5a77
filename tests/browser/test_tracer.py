"""Case tracer: an operator finds a case by id and sees who holds it, what happened, its
escalations and who received which fields of it."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.agencies import HOLDER, Agencies
from tests.browser.bus import OPERATOR, TEAM
from tests.browser.console import log_in, visit, wait_for_case


async def test_an_operator_finds_a_case_by_id_and_sees_its_holder_timeline_escalation_and_audit(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.open_case()
    await agencies.request_escalation(case_id)
    await log_in(page, OPERATOR)
    # The router's audit record and the tracker's record of the raise reach the store last;
    # the team's name is only in the latter (the raise's own audit record comes earlier).
    await wait_for_case(
        page, case_id, containing=("escalation-raised", "toeslagen", f"{TEAM.agency}/{TEAM.team}")
    )

    await visit(page, "/cases")
    await page.get_by_test_id("case-search").fill(str(case_id))
    await page.get_by_test_id("case-search-submit").click()

    await expect(page).to_have_url(re.compile(f"/cases/{case_id}$"))
    await expect(page.get_by_test_id("case-holder")).to_contain_text(HOLDER)
    await expect(page.get_by_test_id("case-status")).to_contain_text("open")
    entries = page.get_by_test_id("timeline-entry")
    await expect(entries.and_(page.locator("[data-type=case-opened]"))).to_have_count(1)
    await expect(entries.and_(page.locator("[data-type=escalation-requested]"))).to_have_count(1)
    escalation = page.get_by_test_id("case-escalation")
    await expect(escalation).to_have_count(1)
    await expect(escalation).to_contain_text(f"{TEAM.agency}/{TEAM.team}")
    # toeslagen subscribes to case-opened (deploy/agencies.yaml): the router delivered it there.
    audit = page.get_by_test_id("audit-entry").filter(has_text="toeslagen")
    await expect(audit).to_have_count(1)
