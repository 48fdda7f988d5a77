"""Overview: it updates live as events flow, without the operator reloading the page."""

from __future__ import annotations

from playwright.async_api import Page, expect

from contracts.topics import CASES
from tests.browser.agencies import Agencies
from tests.browser.bus import OPERATOR
from tests.browser.console import log_in, visit

CASES_MESSAGES = f'[data-testid=topic-row][data-topic="{CASES}"] [data-testid=topic-messages]'


def _count(text: str) -> int:
    """A message count as the page shows it (perhaps with thousands separators)."""
    return int("".join(c for c in text if c.isdigit()))


async def test_the_overview_shows_new_case_events_without_a_reload(
    page: Page, agencies: Agencies
) -> None:
    await log_in(page, OPERATOR)
    await visit(page, "/")
    await expect(page.get_by_test_id("overview")).to_be_visible()
    messages = page.locator(CASES_MESSAGES)
    updated = page.get_by_test_id("overview-updated")
    await expect(messages).to_have_count(1)
    before, stamp = await messages.inner_text(), await updated.inner_text()
    # A mark in the page's own JavaScript world: a reload would wipe it.
    await page.evaluate("window.ketenbusNoReload = true")

    await agencies.open_case()
    await agencies.open_case()

    # At least the two case-opened events the router wrote to the case log, counted live.
    await expect(messages).not_to_have_text(before)
    await page.wait_for_function(
        """([selector, least]) => {
            const cell = document.querySelector(selector);
            return cell !== null && Number(cell.textContent.replace(/[^0-9]/g, "")) >= least;
        }""",
        arg=[CASES_MESSAGES, _count(before) + 2],
    )
    await expect(updated).not_to_have_text(stamp)
    assert await page.evaluate("window.ketenbusNoReload === true")
