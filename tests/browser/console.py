"""Steps a console user takes in the browser, shared by the tests."""

from __future__ import annotations

from playwright.async_api import Page, Response, expect


async def visit(page: Page, path: str, status: int = 200) -> Response:
    """Open `path`; fail at once, naming the page, if it does not answer with `status`."""
    response = await page.goto(path)
    assert response is not None, f"GET {path}: no response"
    assert status == response.status, f"GET {path} answered {response.status}, not {status}"
    return response


async def log_in(page: Page, user: tuple[str, str]) -> None:
    """Log in on the login page as `user` (name, password) and wait until the console says so."""
    name, password = user
    await visit(page, "/login")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text(name)


async def wait_for_case(page: Page, case_id: object, *, containing: tuple[str, ...] = ()) -> None:
    """Wait until the console's API knows the case (the tracker has applied its events) and
    its JSON names each of `containing`: the page, rendered by the server, then shows them."""
    last = ""
    for _ in range(60):  # 60 x 0.25 s: within the page timeout
        response = await page.request.get(f"/api/cases/{case_id}")
        last = f"{response.status} {await response.text()}"
        if response.ok and all(text in last for text in containing):
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"case {case_id} not shown by /api/cases in 15 s: {last[:500]}")
