"""Who may reach what: nobody unauthenticated beyond the public paths; each role's limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from structlog.testing import capture_logs

from services.console.access import require_operator
from services.console.app import SESSION_COOKIE, create_console
from services.runtime.config.settings import Settings
from tests.services.console.conftest import CREDENTIALS, TEAM, ConsoleHarness, console_settings

pytestmark = pytest.mark.broker

# The contract's operator-only pages and APIs; each is checked once its module serves it.
OPERATOR_PATHS = [
    "/",
    "/cases",
    "/dead-letters",
    "/webhooks",
    "/signals",
    "/api/overview",
    "/api/dead-letters",
    "/api/webhooks",
    "/api/signals",
]


async def _operator_only(request: Request) -> Response:
    return PlainTextResponse(f"hello {require_operator(request).name}")


async def _operator_only_api(request: Request) -> Response:
    return JSONResponse({"name": require_operator(request).name})


@pytest.fixture
def guarded(console: ConsoleHarness) -> ConsoleHarness:
    """The console with one operator-only page and API, as the page modules write them."""
    console.app.router.routes += [
        Route("/test-operator-only", _operator_only),
        Route("/api/test-operator-only", _operator_only_api),
    ]
    return console


async def test_an_unauthenticated_page_request_is_redirected_to_login_with_next(
    console: ConsoleHarness,
) -> None:
    response = await console.client().get("/cases/abc?x=1")

    assert 303 == response.status_code
    assert "/login?next=%2Fcases%2Fabc%3Fx%3D1" == response.headers["location"]


async def test_an_unauthenticated_api_request_gets_401_json(console: ConsoleHarness) -> None:
    response = await console.client().post("/api/escalations/x/acknowledge", json={})

    assert 401 == response.status_code
    assert "authentication required" in response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/healthz", "/login", "/static/console.css", "/static/console.js"]
)
async def test_the_public_paths_answer_without_credentials(
    console: ConsoleHarness, path: str
) -> None:
    response = await console.client().get(path)

    assert 200 == response.status_code, response.text


async def test_healthz_still_reports_the_broker_and_services(console: ConsoleHarness) -> None:
    response = await console.client().get("/healthz")

    assert {"status": "up", "services": {}} == {
        k: v for k, v in response.json().items() if k != "broker"
    }
    assert "up" == response.json()["broker"]["state"]


async def test_an_unknown_bearer_token_gets_401_even_on_a_page(console: ConsoleHarness) -> None:
    client = console.client()
    headers = {"Authorization": "Bearer not-a-token"}

    api = await client.get("/api/whoami", headers=headers)
    page = await client.get("/escalations", headers=headers)

    assert (401, 401) == (api.status_code, page.status_code)
    assert "unknown or revoked token" == api.json()["error"]


async def test_a_token_authenticates_its_team(console: ConsoleHarness) -> None:
    response = await console.client(token=True).get("/api/whoami")

    assert {"name": "inning-cli", "role": "team", "team": TEAM} == response.json()


async def test_a_team_member_gets_403_on_an_operator_page_and_api(
    guarded: ConsoleHarness,
) -> None:
    member = await guarded.member()

    page = await member.get("/test-operator-only")
    api = await member.get("/api/test-operator-only")
    by_token = await guarded.client(token=True).get("/api/test-operator-only")

    assert 403 == page.status_code
    assert "text/html" in page.headers["content-type"]
    assert "operators only" in page.text
    assert 403 == api.status_code
    assert "operators only" in api.json()["error"]
    assert 403 == by_token.status_code


async def test_an_operator_reaches_the_operator_page_and_api(guarded: ConsoleHarness) -> None:
    operator = await guarded.operator()

    assert "hello operator" == (await operator.get("/test-operator-only")).text
    assert {"name": "operator"} == (await operator.get("/api/test-operator-only")).json()


@pytest.mark.parametrize("path", OPERATOR_PATHS)
async def test_a_team_member_gets_403_on_the_operator_pages_that_exist(
    console: ConsoleHarness, path: str
) -> None:
    scope = {"type": "http", "path": path, "method": "GET"}
    if not any(route.matches(scope)[0] == Match.FULL for route in console.app.router.routes):
        pytest.skip(f"{path} is not served yet")
    member = await console.member()

    response = await member.get(path)

    assert 403 == response.status_code


async def test_login_and_logout_round_trip(console: ConsoleHarness) -> None:
    client = console.client()

    login = await client.post(
        "/login", data={"username": "operator", "password": CREDENTIALS.operator[1]}
    )
    me = await client.get("/api/whoami")
    logout = await client.get("/logout")
    after = await client.get("/api/whoami")

    assert (303, "/") == (login.status_code, login.headers["location"])
    assert {"name": "operator", "role": "operator", "team": None} == me.json()
    assert (303, "/login") == (logout.status_code, logout.headers["location"])
    assert 401 == after.status_code


async def test_a_team_member_starts_on_the_escalation_board(console: ConsoleHarness) -> None:
    response = await console.client().post(
        "/login", data={"username": "inning", "password": CREDENTIALS.member[1], "next": "/"}
    )

    assert "/escalations" == response.headers["location"]


async def test_login_goes_on_to_a_local_next(console: ConsoleHarness) -> None:
    response = await console.client().post(
        "/login",
        data={**_operator_form(), "next": "/cases/abc?x=1"},
    )

    assert "/cases/abc?x=1" == response.headers["location"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\nx",
        "evil.example",
    ],
)
async def test_login_refuses_a_next_that_leaves_the_console(
    console: ConsoleHarness, target: str
) -> None:
    response = await console.client().post("/login", data={**_operator_form(), "next": target})

    assert (303, "/") == (response.status_code, response.headers["location"])


async def test_the_session_cookie_is_httponly_and_samesite(console: ConsoleHarness) -> None:
    response = await console.client().post("/login", data=_operator_form())

    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_a_wrong_password_is_refused_and_logged_without_secrets(
    console: ConsoleHarness,
) -> None:
    client = console.client()
    with capture_logs() as logs:
        wrong = await client.post(
            "/login", data={"username": "operator", "password": "guess-password"}
        )
        unknown = await client.post(
            "/login", data={"username": "jan.jansen@example.nl", "password": "guess-password"}
        )

    assert (401, 401) == (wrong.status_code, unknown.status_code)
    assert "Wrong user name or password." in wrong.text
    assert "set-cookie" not in wrong.headers
    assert 401 == (await client.get("/api/whoami")).status_code
    refused = [entry for entry in logs if entry["event"] == "console login refused"]
    assert [True, False] == [entry["known_user"] for entry in refused]
    assert "operator" == refused[0]["user"]
    assert "guess-password" not in repr(logs)
    assert "jan.jansen" not in repr(logs)


async def test_a_cross_site_post_with_the_cookie_is_refused(console: ConsoleHarness) -> None:
    operator = await console.operator()

    response = await operator.post(
        "/api/escalations/x/acknowledge", json={}, headers={"Origin": "https://evil.example"}
    )

    assert 403 == response.status_code
    assert "cross-site request refused" == response.json()["error"]


async def test_a_login_posted_from_another_site_is_refused(console: ConsoleHarness) -> None:
    client = console.client()

    response = await client.post(
        "/login", data=_operator_form(), headers={"Origin": "https://evil.example"}
    )

    assert 403 == response.status_code
    assert "set-cookie" not in response.headers


async def test_pages_forbid_foreign_scripts_and_framing(console: ConsoleHarness) -> None:
    response = await console.client().get("/login")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


async def test_without_a_users_file_nobody_logs_in_and_healthz_still_answers(
    kafka: str, settings: Settings, tmp_path: Path
) -> None:
    import httpx

    app = create_console(
        console_settings(settings, tmp_path, None), bootstrap=kafka, health_targets={}
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client,
    ):
        login = await client.get("/login")
        attempt = await client.post("/login", data=_operator_form())
        api = await client.get("/api/whoami")
        health = await client.get("/healthz")

    assert "No console users are configured" in login.text
    assert "KETENBUS_CONSOLE_USERS" in login.text
    assert 503 == attempt.status_code
    assert 401 == api.status_code
    assert "KETENBUS_CONSOLE_USERS" in api.json()["error"]
    assert 200 == health.status_code


def _operator_form() -> dict[str, str]:
    name, password = CREDENTIALS.operator
    return {"username": name, "password": password}


async def _fail(client: httpx.AsyncClient, name: str) -> int:
    response = await client.post("/login", data={"username": name, "password": "wrong"})
    return response.status_code


async def test_after_five_failed_logins_a_name_is_refused_429_even_with_the_right_password(
    console: ConsoleHarness,
) -> None:
    """The sixth try within the window is not checked: 429 with Retry-After, no session."""
    client = console.client()

    statuses = [await _fail(client, "operator") for _ in range(5)]
    sixth = await client.post("/login", data=_operator_form())

    assert [401] * 5 == statuses
    assert 429 == sixth.status_code
    assert 1 <= int(sixth.headers["retry-after"]) <= 300
    assert "Too many failed logins" in sixth.text
    assert 401 == (await client.get("/api/whoami")).status_code


async def test_one_name_s_failures_do_not_lock_out_another_name_from_the_same_address(
    console: ConsoleHarness,
) -> None:
    client = console.client()
    for _ in range(5):
        await _fail(client, "operator")

    member = await client.post(
        "/login", data={"username": "inning", "password": CREDENTIALS.member[1]}
    )

    assert 303 == member.status_code


async def test_a_successful_login_clears_its_name_s_count(console: ConsoleHarness) -> None:
    """Four failures, a success, four failures again: still 401, not 429."""
    client = console.client()
    for _ in range(4):
        await _fail(client, "operator")
    assert 303 == (await client.post("/login", data=_operator_form())).status_code

    assert [401] * 4 == [await _fail(client, "operator") for _ in range(4)]


async def test_one_address_trying_many_names_is_stopped_at_four_times_one_name_s_limit(
    console: ConsoleHarness,
) -> None:
    """Twenty names fail once each from one address; the twenty-first name gets 429."""
    client = console.client()

    statuses = [await _fail(client, f"guess{n}") for n in range(20)]
    next_name = await _fail(client, "guess20")

    assert ([401] * 20, 429) == (statuses, next_name)
