"""What operators read of the gateway's webhook deliveries, and replay: per subscription
its tally and last error, and replay of one delivery, a subscription's or a time range's.
Rows made in the store as the gateway writes them; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from services import webhook_deliveries as wd
from services.runtime.errors import UserError
from tests._testutil import webhooks
from tests._testutil.webhooks import (
    T0,
    add_delivery,
    add_subscription,
    delivery_rows,
    scopes,
    story,
)

MINUTE = timedelta(minutes=1)


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


async def test_a_tally_counts_each_status_and_failing_only_since_the_retries_began(
    store: AsyncEngine,
) -> None:
    """Pending counts every pending delivery; failing only those with a failed attempt
    since their retry horizon began (a replayed one's earlier failures do not count)."""
    sub = await add_subscription(store)
    await add_delivery(store, sub, "pending")
    await add_delivery(store, sub, "pending", tries=[(T0 + MINUTE, 503), (T0 + 2 * MINUTE, None)])
    await add_delivery(
        store, sub, "pending", tries=[(T0 + MINUTE, 500)], retry_from=T0 + 10 * MINUTE
    )
    await add_delivery(store, sub, "delivered", tries=[(T0 + MINUTE, 200)])
    await add_delivery(store, sub, "delivered", tries=[(T0 + MINUTE, 503), (T0 + 2 * MINUTE, 204)])
    await add_delivery(store, sub, "dead", tries=[(T0 + MINUTE, 502)])
    await add_delivery(store, sub, "dropped")
    other = await add_subscription(store, status="ended")
    await add_delivery(store, other, "dropped")

    found = {o.subscription_id: o for o in await wd.overviews(store)}

    assert wd.Tally(pending=3, failing=1, delivered=2, dead=1, dropped=1) == found[sub].tally
    assert wd.Tally(dropped=1) == found[other].tally
    assert ("active", "ended") == (found[sub].status, found[other].status)


async def test_the_last_error_is_the_newest_failed_attempt_of_any_of_its_deliveries(
    store: AsyncEngine,
) -> None:
    """Not the newest attempt (a later success says nothing of errors), nor another
    subscription's; a subscription that never failed has none."""
    sub = await add_subscription(store)
    await add_delivery(store, sub, "dead", tries=[(T0 + MINUTE, 502), (T0 + 3 * MINUTE, None)])
    await add_delivery(
        store, sub, "delivered", tries=[(T0 + 2 * MINUTE, 500), (T0 + 9 * MINUTE, 200)]
    )
    clean = await add_subscription(store)
    await add_delivery(store, clean, "delivered", tries=[(T0 + 5 * MINUTE, 200)])
    noisy = await add_subscription(store)
    await add_delivery(store, noisy, "pending", tries=[(T0 + 8 * MINUTE, 429)])

    found = {o.subscription_id: o for o in await wd.overviews(store)}

    assert ("ConnectError: connection refused", T0 + 3 * MINUTE) == (
        found[sub].last_error,
        found[sub].last_error_at,
    )
    assert (None, None) == (found[clean].last_error, found[clean].last_error_at)
    assert ("HTTP 429", T0 + 8 * MINUTE) == (found[noisy].last_error, found[noisy].last_error_at)
    assert found[sub] == await wd.overview(store, sub)


async def test_an_overview_shows_the_callback_without_what_may_carry_a_credential(
    store: AsyncEngine,
) -> None:
    """Its user info, query and fragment are left out; nothing of the Authorization value
    or the signing secret is in it."""
    sub = await add_subscription(
        store, callback="https://user:pw@hooks.example.org:8443/in?code=x#y"
    )

    [found] = await wd.overviews(store)

    assert "https://hooks.example.org:8443/in" == found.callback
    for secret in webhooks.SECRETS:
        assert secret not in repr(found)
    assert found == await wd.overview(store, sub)


@pytest.mark.parametrize("scope", ["delivery", "subscription", "range"])
async def test_replay_makes_pending_only_the_chosen_finished_deliveries_of_active_subscriptions(
    store: AsyncEngine, scope: str
) -> None:
    """Delivered or given up, of an active subscription, in the scope: pending from now,
    a new horizon, unclaimed; nothing else changes."""
    a, b = await story(store), await story(store)
    await story(store, status="ended")  # made in the range too, but its deliveries stay
    chosen, expected = scopes(a, b)[scope]
    before = await delivery_rows(store)
    started = datetime.now(UTC)

    count = await wd.replay(store, **chosen)

    after = await delivery_rows(store)
    assert len(expected) == count
    assert expected == {i for i in after if after[i].status != before[i].status}
    for i in expected:
        row = after[i]
        assert ("pending", None, None) == (row.status, row.finished_at, row.claimed_until)
        assert row.retry_from == row.next_attempt_at
        assert started <= row.retry_from <= datetime.now(UTC)
    for i in set(after) - expected:
        assert before[i] == after[i]


async def test_a_replay_is_logged_for_the_audit_with_who_asked_and_how_many(
    store: AsyncEngine, logs: list[MutableMapping[str, Any]]
) -> None:
    """The actor given (the console's operator), else the login running the process."""
    a = await story(store)

    await wd.replay(store, subscription_id=a.sub, actor="operator")
    await wd.replay(store, delivery_id=a.pending)

    first, second = [entry for entry in logs if entry["event"] == "webhook deliveries replayed"]
    assert ("operator", str(a.sub), None, 3) == (
        first["operator"],
        first["subscription_id"],
        first["delivery_id"],
        first["replayed"],
    )
    assert (a.pending, 0) == (second["delivery_id"], second["replayed"])
    assert second["operator"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T09:30", datetime(2026, 11, 29, 9, 30, tzinfo=UTC)),
        ("2026-11-29T10:30:00+01:00", datetime(2026, 11, 29, 9, 30, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_a_moment_without_an_offset_is_utc_and_an_empty_one_none(
    text: str | None, expected: datetime | None
) -> None:
    """As `ketenbus webhooks replay --since` and the console's time inputs have it."""
    assert expected == wd.parse_moment(text, "since")


def test_a_moment_that_is_no_time_is_a_user_error_naming_it() -> None:
    """The one-line refusal the CLI prints and the console answers with a 400."""
    with pytest.raises(UserError, match="--since 'yesterday' is not an ISO 8601 time"):
        wd.parse_moment("yesterday", "--since")
