"""Access: a team member is shown the forbidden page on operator pages, and a visitor who is
not logged in the login page; neither sees case data."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.agencies import Agencies
from tests.browser.bus import TEAM_MEMBER
from tests.browser.console import log_in, visit


async def test_a_team_member_gets_the_forbidden_page_on_the_overview_and_on_a_case(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.open_case()
    await log_in(page, TEAM_MEMBER)

    await visit(page, "/", status=403)
    await expect(page.get_by_test_id("overview")).to_have_count(0)
    await expect(page.get_by_test_id("topic-row")).to_have_count(0)

    await visit(page, f"/cases/{case_id}", status=403)
    await expect(page.get_by_test_id("case-holder")).to_have_count(0)
    await expect(page.get_by_test_id("timeline-entry")).to_have_count(0)
    api = await page.request.get(f"/api/cases/{case_id}")
    assert 403 == api.status


async def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page_not_the_case(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.open_case()

    await page.goto(f"/cases/{case_id}")

    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    await expect(page.get_by_test_id("case-holder")).to_have_count(0)
    await expect(page.get_by_test_id("whoami")).to_have_count(0)
