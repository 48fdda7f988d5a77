"""Webhook deliveries in the console: per subscription its counts and last error, its
deliveries and each one's attempts, and replay of one delivery, a subscription's or a time
range's after confirming (operators only, audited), as `ketenbus webhooks replay` does.

The rows are made in the console's own store (SQLite) as the gateway writes them
(`tests._testutil.webhooks`); what the counts mean on PostgreSQL too is checked in
tests/services/webhook_deliveries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from services import webhook_deliveries as wd
from services.cli import webhooks_cmd
from tests._testutil import webhooks
from tests._testutil.webhooks import (
    T0,
    Story,
    add_delivery,
    add_subscription,
    delivery_rows,
    scopes,
    story,
)
from tests.services.console.conftest import ConsoleHarness

pytestmark = pytest.mark.broker

MINUTE = timedelta(minutes=1)
REPLAY = "/api/webhooks/replay"


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """What the console logs: the replays' audit among it."""
    with capture_logs() as captured:
        yield captured


async def _pages(console: ConsoleHarness, client: httpx.AsyncClient) -> list[httpx.Response]:
    """Every webhook page and API answer for the console's one subscription and delivery."""
    engine = console.state.engine
    [sub] = [o.subscription_id for o in await wd.overviews(engine)]
    [delivery_id, *_] = await delivery_rows(engine)
    paths = [
        "/webhooks",
        f"/webhooks/{sub}",
        f"/webhooks/{sub}/deliveries/{delivery_id}",
        "/api/webhooks",
        f"/api/webhooks/{sub}",
        f"/api/webhooks/{sub}/deliveries/{delivery_id}",
    ]
    return [await client.get(path) for path in paths]


async def test_the_list_shows_each_subscriptions_counts_and_last_error(
    console: ConsoleHarness,
) -> None:
    """Pending, failing (pending with a failed attempt), delivered, given up and dropped,
    per subscription, and its newest failed attempt with when."""
    engine = console.state.engine
    sub = await add_subscription(engine, agency="gm0363")
    await add_delivery(engine, sub, "pending")
    await add_delivery(engine, sub, "pending", tries=[(T0 + MINUTE, 503), (T0 + 2 * MINUTE, None)])
    await add_delivery(engine, sub, "delivered", tries=[(T0 + MINUTE, 200)])
    await add_delivery(engine, sub, "delivered", tries=[(T0 + MINUTE, 200)])
    await add_delivery(engine, sub, "dead", tries=[(T0 + 3 * MINUTE, 502)])
    await add_delivery(engine, sub, "dropped")
    ended = await add_subscription(engine, agency="uwv", status="ended")
    operator = await console.operator()

    api = await operator.get("/api/webhooks")
    page = await operator.get("/webhooks")

    assert 200 == api.status_code, api.text
    shown = {s["id"]: s for s in api.json()["subscriptions"]}
    counts = {"pending": 2, "failing": 1, "delivered": 2, "dead": 1, "dropped": 1, "total": 6}
    assert counts == shown[str(sub)]["counts"]
    assert ("gm0363", "active", "HTTP 502", (T0 + 3 * MINUTE).isoformat()) == (
        shown[str(sub)]["agency"],
        shown[str(sub)]["status"],
        shown[str(sub)]["last_error"],
        shown[str(sub)]["last_error_at"],
    )
    assert ("uwv", "ended", 0, None) == (
        shown[str(ended)]["agency"],
        shown[str(ended)]["status"],
        shown[str(ended)]["counts"]["total"],
        shown[str(ended)]["last_error"],
    )
    assert "https://hooks.example.org/ketenbus" == shown[str(sub)]["callback"]
    assert 200 == page.status_code
    row = page.text.split(f'data-subscription-id="{sub}"')[1].split("</tr>")[0]
    for name, count in counts.items():
        if name != "total":
            assert f'data-testid="count-{name}">{count}</td>' in row, name
    assert "HTTP 502" in row
    assert f'href="/webhooks/{sub}"' in row
    assert f'data-subscription-id="{ended}" data-status="ended"' in page.text
    assert '<script src="/static/webhooks.js"' in page.text


async def test_a_subscriptions_page_lists_its_deliveries_and_a_deliverys_page_its_attempts(
    console: ConsoleHarness,
) -> None:
    """Event, case, status, attempts, next attempt and last answer per delivery, newest
    first (of `?status=` if given); one delivery's page has every attempt."""
    engine = console.state.engine
    sub = await add_subscription(engine)
    failing = await add_delivery(
        engine, sub, "pending", tries=[(T0 + MINUTE, 503), (T0 + 2 * MINUTE, None)]
    )
    delivered = await add_delivery(engine, sub, "delivered", tries=[(T0 + MINUTE, 200)])
    elsewhere = await add_delivery(engine, await add_subscription(engine), "pending")
    rows = await delivery_rows(engine)
    operator = await console.operator()

    api = await operator.get(f"/api/webhooks/{sub}")
    only = await operator.get(f"/api/webhooks/{sub}", params={"status": "delivered"})
    page = await operator.get(f"/webhooks/{sub}")
    attempts = await operator.get(f"/api/webhooks/{sub}/deliveries/{failing}")
    attempts_page = await operator.get(f"/webhooks/{sub}/deliveries/{failing}")

    assert 200 == api.status_code, api.text
    assert [delivered, failing] == [d["id"] for d in api.json()["deliveries"]]
    [first] = [d for d in api.json()["deliveries"] if d["id"] == failing]
    assert (
        str(rows[failing].event_id),
        str(rows[failing].case_id),
        "pending",
        2,
        T0.isoformat(),
        None,
        "ConnectError: connection refused",
    ) == (
        first["event_id"],
        first["case_id"],
        first["status"],
        first["attempts"],
        first["next_attempt_at"],
        first["last_status"],
        first["last_error"],
    )
    assert [delivered] == [d["id"] for d in only.json()["deliveries"]]
    assert 200 == page.status_code
    assert f'data-delivery-id="{failing}" data-status="pending"' in page.text
    assert f'data-delivery-id="{delivered}" data-status="delivered"' in page.text
    assert f'data-delivery-id="{elsewhere}"' not in page.text
    assert f'href="/webhooks/{sub}/deliveries/{failing}"' in page.text
    assert 200 == attempts.status_code, attempts.text
    assert [
        (1, (T0 + MINUTE).isoformat(), 503, "HTTP 503"),
        (2, (T0 + 2 * MINUTE).isoformat(), None, "ConnectError: connection refused"),
    ] == [(a["attempt"], a["at"], a["status"], a["error"]) for a in attempts.json()["attempts"]]
    assert 2 == attempts_page.text.count('data-testid="webhook-attempt"')
    assert "no answer" in attempts_page.text


async def test_each_replay_button_says_what_it_replays_and_only_finished_deliveries_have_one(
    console: ConsoleHarness,
) -> None:
    """The subscription, a time range of it, and each delivered or given-up delivery; an
    ended subscription's page offers no replay."""
    engine = console.state.engine
    sub = await add_subscription(engine)
    pending = await add_delivery(engine, sub, "pending")
    dead = await add_delivery(engine, sub, "dead", tries=[(T0, 500)])
    ended = await add_subscription(engine, status="ended")
    await add_delivery(engine, ended, "delivered", tries=[(T0, 200)])
    operator = await console.operator()

    page = await operator.get(f"/webhooks/{sub}")
    pending_page = await operator.get(f"/webhooks/{sub}/deliveries/{pending}")
    dead_page = await operator.get(f"/webhooks/{sub}/deliveries/{dead}")
    ended_page = await operator.get(f"/webhooks/{ended}")

    assert f'data-replay=\'{{"subscription": "{sub}"}}\'' in page.text
    assert f'data-replay-range=\'{{"subscription": "{sub}"}}\'' in page.text
    assert f"data-replay='{{\"delivery\": {dead}}}'" in page.text
    assert f"data-replay='{{\"delivery\": {pending}}}'" not in page.text
    assert "<dialog" in page.text
    assert '<script src="/static/webhooks.js"' in page.text
    assert 'data-testid="replay-delivery"' not in pending_page.text
    assert f"data-replay='{{\"delivery\": {dead}}}'" in dead_page.text
    assert "data-replay" not in ended_page.text
    assert "has ended" in ended_page.text


def _cli_options(chosen: dict[str, Any]) -> list[str]:
    options = []
    for name, value in chosen.items():
        option = "--" + name.removesuffix("_id")
        options += [option, value.isoformat() if isinstance(value, datetime) else str(value)]
    return options


def _console_body(chosen: dict[str, Any]) -> dict[str, Any]:
    """What webhooks.js sends: the CLI's options' names, times as a datetime-local input."""
    body: dict[str, Any] = {"confirm": True}
    for name, value in chosen.items():
        shown = (
            value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
            if isinstance(value, datetime)
            else value
        )
        body[name.removesuffix("_id")] = str(shown) if name == "subscription_id" else shown
    return body


@pytest.mark.parametrize("by", ["console", "cli"])
@pytest.mark.parametrize("scope", ["delivery", "subscription", "range"])
async def test_a_replay_from_the_console_sets_the_rows_back_as_the_cli_replay_does(
    console: ConsoleHarness, scope: str, by: str
) -> None:
    """One delivery, a subscription's, or a time range's: the same rows pending again, from
    the console as from `ketenbus webhooks replay`; the answer says how many."""
    engine = console.state.engine
    a, b = await story(engine), await story(engine)
    await story(engine, status="ended")
    chosen, expected = scopes(a, b)[scope]
    before = await delivery_rows(engine)
    started = datetime.now(UTC)

    if by == "console":
        operator = await console.operator()
        response = await operator.post(REPLAY, json=_console_body(chosen))
        assert 200 == response.status_code, response.text
        said = response.json()["message"]
        assert len(expected) == response.json()["replayed"]
    else:
        env = {"KETENBUS_DATABASE_URL": console.state.settings.database}
        result = await asyncio.to_thread(
            CliRunner().invoke, webhooks_cmd.app, ["replay", *_cli_options(chosen)], env=env
        )
        assert 0 == result.exit_code, result.output
        said = result.stdout

    after = await delivery_rows(engine)
    assert wd.replayed_message(len(expected)) in said
    assert expected == {i for i in after if after[i].status != before[i].status}
    for i in expected:
        row = after[i]
        assert ("pending", None, None) == (row.status, row.finished_at, row.claimed_until)
        assert row.retry_from == row.next_attempt_at
        assert started <= row.retry_from
    for i in set(after) - expected:
        assert before[i] == after[i]


async def test_a_console_replay_is_audited_under_the_operators_name(
    console: ConsoleHarness, logs: list[MutableMapping[str, Any]]
) -> None:
    """What was asked and how many were replayed, with the logged-in operator; a replay
    that finds nothing to replay says so, and is audited too."""
    a: Story = await story(console.state.engine)
    operator = await console.operator()

    done = await operator.post(REPLAY, json={"confirm": True, "subscription": str(a.sub)})
    again = await operator.post(REPLAY, json={"confirm": True, "delivery": a.pending})

    assert (200, 200) == (done.status_code, again.status_code)
    assert 0 == again.json()["replayed"]
    assert "only what was delivered or given up" in again.json()["message"]
    first, second = [entry for entry in logs if entry["event"] == "webhook deliveries replayed"]
    assert ("operator", str(a.sub), 3) == (
        first["operator"],
        first["subscription_id"],
        first["replayed"],
    )
    assert ("operator", a.pending, 0) == (
        second["operator"],
        second["delivery_id"],
        second["replayed"],
    )


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"", "application/json", "confirm the replay"),
        (b'{"subscription": "x"}', "application/json", "confirm the replay"),
        (b'{"confirm": "yes", "delivery": 1}', "application/json", "confirm the replay"),
        (b'{"confirm": true, "delivery": 1}', "text/plain", "confirm the replay"),
        (b"not json", "application/json", "confirm the replay"),
        (b'{"confirm": true}', "application/json", "say what to replay"),
        (b'{"confirm": true, "since": ""}', "application/json", "say what to replay"),
        (b'{"confirm": true, "since": "yesterday"}', "application/json", "not an ISO 8601 time"),
        (b'{"confirm": true, "subscription": "x"}', "application/json", "is not a UUID"),
        (b'{"confirm": true, "delivery": "1"}', "application/json", "must be a delivery id"),
    ],
)
async def test_a_replay_unconfirmed_or_naming_nothing_valid_is_400_and_replays_nothing(
    console: ConsoleHarness, body: bytes, content_type: str, error: str
) -> None:
    """Confirmed JSON only, and what to replay said as the CLI's options say it: an empty
    choice would replay everything, so it is refused as the CLI refuses it."""
    await story(console.state.engine)
    before = await delivery_rows(console.state.engine)
    operator = await console.operator()

    response = await operator.post(REPLAY, content=body, headers={"content-type": content_type})

    assert 400 == response.status_code
    assert error in response.json()["error"]
    assert before == await delivery_rows(console.state.engine)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/webhooks"),
        ("GET", "/webhooks/{sub}"),
        ("GET", "/webhooks/{sub}/deliveries/{delivery}"),
        ("GET", "/api/webhooks"),
        ("GET", "/api/webhooks/{sub}"),
        ("GET", "/api/webhooks/{sub}/deliveries/{delivery}"),
        ("POST", REPLAY),
    ],
)
async def test_a_team_member_can_neither_see_nor_replay_webhook_deliveries(
    console: ConsoleHarness, method: str, path: str
) -> None:
    """403 on every webhook page and API; the replay changes nothing."""
    a = await story(console.state.engine)
    before = await delivery_rows(console.state.engine)
    member = await console.member()
    token = console.client(token=True)
    url = path.format(sub=a.sub, delivery=a.dead)
    body = {"confirm": True, "subscription": str(a.sub)}

    by_session = await member.request(method, url, json=body)
    by_token = await token.request(method, url, json=body)

    assert (403, 403) == (by_session.status_code, by_token.status_code)
    assert before == await delivery_rows(console.state.engine)


async def test_unauthenticated_or_from_another_site_a_replay_is_refused(
    console: ConsoleHarness,
) -> None:
    """401 without credentials; 403 for the operator's cookie on a request from another site."""
    a = await story(console.state.engine)
    before = await delivery_rows(console.state.engine)
    operator = await console.operator()
    body = {"confirm": True, "subscription": str(a.sub)}

    anonymous = await console.client().post(REPLAY, json=body)
    cross_site = await operator.post(REPLAY, json=body, headers={"origin": "https://evil.example"})

    assert (401, 403) == (anonymous.status_code, cross_site.status_code)
    assert before == await delivery_rows(console.state.engine)


async def test_the_authorization_value_and_the_signing_secret_never_appear(
    console: ConsoleHarness,
) -> None:
    """Nor the callback's query (where a receiver's key may be) or a delivery's body, on
    any webhook page or API answer."""
    engine = console.state.engine
    sub = await add_subscription(engine)
    await add_delivery(engine, sub, "dead", tries=[(T0, 401)])
    operator = await console.operator()

    answers = await _pages(console, operator)

    assert [200] * 6 == [answer.status_code for answer in answers]
    for answer in answers:
        for secret in webhooks.SECRETS:
            assert secret not in answer.text, (str(answer.url), secret)
        assert "hooks.example.org" in answer.text


async def test_an_unknown_subscription_or_another_subscriptions_delivery_is_404(
    console: ConsoleHarness,
) -> None:
    """As page and as API."""
    engine = console.state.engine
    sub, other = await add_subscription(engine), await add_subscription(engine)
    theirs = await add_delivery(engine, other, "pending")
    unknown = "00000000-0000-4000-8000-000000000000"
    operator = await console.operator()

    answers = [
        await operator.get(path)
        for path in (
            f"/webhooks/{unknown}",
            f"/api/webhooks/{unknown}",
            f"/webhooks/{sub}/deliveries/{theirs}",
            f"/api/webhooks/{sub}/deliveries/{theirs}",
            f"/api/webhooks/{sub}/deliveries/999999",
        )
    ]

    assert [404] * 5 == [answer.status_code for answer in answers]
    assert {"error": f"no webhook subscription {unknown}"} == answers[1].json()


async def test_the_navigation_links_the_webhooks_page_for_operators_only(
    console: ConsoleHarness,
) -> None:
    """Marked as the current page there; a team member's navigation has no such link."""
    operator = await console.operator()
    member = await console.member()

    here = await operator.get("/webhooks")
    elsewhere = await operator.get("/signals")
    board = await member.get("/escalations")

    assert '<a href="/webhooks" aria-current="page">Webhooks</a>' in here.text
    assert '<a href="/webhooks">Webhooks</a>' in elsewhere.text
    assert 'href="/webhooks"' not in board.text
