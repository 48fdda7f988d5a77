"""Escalation board: the alerted team acknowledges and resolves an escalation, and the board
shows each step once the escalation service has applied it, without a reload."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.agencies import Agencies
from tests.browser.bus import TEAM_MEMBER
from tests.browser.console import log_in, visit


async def test_the_alerted_team_acknowledges_then_resolves_an_escalation_on_the_board(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.open_case()
    # Level 1 of the `schulden` path alerts the team member's team (bus.TEAM).
    await agencies.request_escalation(case_id, level=1)
    await log_in(page, TEAM_MEMBER)
    await visit(page, "/escalations")
    row = page.locator(f'[data-testid=escalation][data-case-id="{case_id}"]')
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "raised")
    reloads: list[str] = []
    page.on("framenavigated", lambda frame: reloads.append(frame.url))

    await row.get_by_test_id("acknowledge").click()
    # Only the form asked for is shown: one note field, not the resolve form's as well.
    await expect(page.locator("textarea[name=note]:visible")).to_have_count(1)
    await expect(page.locator("select[name=outcome]:visible")).to_have_count(0)
    await page.locator("textarea[name=note]:visible").fill("Wij pakken dit op")
    await page.locator("[data-testid=acknowledge-submit]:visible").click()
    await expect(row).to_have_attribute("data-status", "acknowledged")

    await row.get_by_test_id("resolve").click()
    await expect(page.locator("textarea[name=note]:visible")).to_have_count(1)
    await page.locator("select[name=outcome]:visible").select_option("maatwerk-granted")
    await page.locator("textarea[name=note]:visible").fill("Maatwerk toegekend")
    await page.locator("[data-testid=resolve-submit]:visible").click()
    await expect(row).to_have_attribute("data-status", "resolved")
    assert [] == reloads
