"""Dead letters: an operator opens one, replays it after confirming, and sees the result."""

from __future__ import annotations

from playwright.async_api import Page, expect

from contracts.topics import DLQ
from tests._testutil import keyed, read_until
from tests.browser.agencies import Agencies
from tests.browser.bus import OPERATOR
from tests.browser.console import log_in, visit


async def test_an_operator_replays_a_dead_letter_after_confirming_and_sees_the_result(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.send_unsigned()
    [letter] = await read_until(agencies.bootstrap, DLQ, keyed(case_id), timeout=15)
    await log_in(page, OPERATOR)

    await visit(page, "/dead-letters")
    row = page.locator(
        f'[data-testid=dead-letter][data-partition="{letter.partition}"]'
        f'[data-offset="{letter.offset}"]'
    )
    await row.locator("a").first.click()
    await expect(page.get_by_test_id("dead-letter-reason")).not_to_be_empty()
    await page.get_by_test_id("replay").click()
    dialog = page.locator("dialog[open]")
    await expect(dialog).to_be_visible()
    await dialog.get_by_test_id("replay-confirm").click()

    await expect(page.get_by_test_id("replay-result")).not_to_be_empty()
    # Replayed to its agency's outbox, the unsigned event is refused again: a second letter.
    letters = await read_until(agencies.bootstrap, DLQ, keyed(case_id), count=2, timeout=15)
    assert 2 == len(letters)
