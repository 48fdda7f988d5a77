"""Browser tests: the console in real headless Chromium (Debian's `chromium`), driven by Playwright.

One bus (`ketenbus up` in its own process) and one browser serve every test of
this package; each test gets a fresh browser context (no cookies from another
test) and leaves a screenshot of its last state, passed or failed, in
artifacts/screenshots/<test name>.png. Without Chromium the tests are skipped
with the reason, unless KETENBUS_REQUIRE_BROWSER=1 (CI), where that is a failure.
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from tests.browser.agencies import Agencies
from tests.browser.bus import Bus, start_bus, stop_bus
from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("KETENBUS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO / "artifacts" / "screenshots"
TIMEOUT_MS = 15_000
"""Every wait of a page action or assertion: long enough for a live update, never forever."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.broker)
            item.add_marker(pytest.mark.timeout(120))


@pytest.fixture(scope="package")
def chromium() -> Path:
    """Debian's Chromium (KETENBUS_CHROMIUM: another path); skip, or fail if required,
    when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("KETENBUS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def bus(
    chromium: Path, tmp_path_factory: pytest.TempPathFactory, signed_registry: AgencyRegistry
) -> Iterator[Bus]:
    """`ketenbus up` on free ports, on the registry with the test keys; stopped afterwards."""
    started, process = start_bus(tmp_path_factory.mktemp("browser-bus"), signed_registry)
    try:
        yield started
    finally:
        code = stop_bus(process)
        assert 0 == code, f"ketenbus up exited with {code}; log: {started.log}"


@pytest.fixture(scope="package")
def agencies(
    bus: Bus, signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]
) -> Agencies:
    return Agencies(bus.bootstrap, signed_registry, agency_keys)


@pytest.fixture(scope="package")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    # /dev/shm is 64 MB in a default container: too small for Chromium's shared memory.
    args = ["--disable-dev-shm-usage"]
    # The sandbox needs user namespaces that a root process (CI containers) does not get.
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=args, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in a fresh context on the bus's console; its last state saved as a screenshot,
    and no uncaught JavaScript error on it."""
    context = await browser.new_context(
        base_url=bus.console, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    opened = await context.new_page()
    # A script that throws leaves a page that looks right and no longer updates.
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"{opened.url}: {error}"))
    try:
        yield opened
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        try:
            await opened.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        finally:
            await context.close()
    assert [] == errors, "uncaught JavaScript errors in the console's pages"
