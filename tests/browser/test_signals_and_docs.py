"""Signals and AsyncAPI pages: the policy-signals report with its chart (operators), and the
channels document that anyone may read."""

from __future__ import annotations

from playwright.async_api import Page, expect

from contracts.topics import CASES
from tests.browser.agencies import Agencies
from tests.browser.bus import OPERATOR
from tests.browser.console import log_in, visit


async def test_an_operator_sees_escalations_by_cause_as_a_chart_on_the_signals_page(
    page: Page, agencies: Agencies
) -> None:
    case_id = await agencies.open_case()
    await agencies.request_escalation(case_id, rule_reference="Participatiewet art. 18")
    await log_in(page, OPERATOR)
    for _ in range(60):  # 60 x 0.25 s: until the escalation is in the store the report reads
        report = await (await page.request.get("/api/signals")).json()
        if report.get("escalations", 0) >= 1:
            break
        await page.wait_for_timeout(250)

    await visit(page, "/signals")

    chart = page.get_by_test_id("signals-chart")
    await expect(chart).to_be_visible()
    assert "svg" == await chart.evaluate("element => element.tagName.toLowerCase()")
    await expect(page.get_by_test_id("signals-escalations")).not_to_have_text("0")


async def test_the_asyncapi_page_lists_the_case_log_channel_without_logging_in(
    page: Page,
) -> None:
    await visit(page, "/docs/asyncapi")

    # One channel per service that writes or reads the case log: at least one.
    channels = page.locator(f'[data-testid=asyncapi-channel][data-address="{CASES}"]')
    await expect(channels.first).to_be_visible()
    await expect(page.get_by_test_id("whoami")).to_have_count(0)
