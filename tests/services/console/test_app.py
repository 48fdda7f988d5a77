"""The console's shell: its producer reaches the broker, and what pages open is closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import topics
from services.console.app import create_console
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from tests.services.console.conftest import ConsoleHarness, console_settings

pytestmark = pytest.mark.broker


async def test_the_producer_reaches_the_broker_with_every_acknowledgement(
    console: ConsoleHarness,
) -> None:
    producer = await console.state.started_producer(timeout=20)

    record = await producer.send_and_wait(topics.DLQ, b"{}", key=b"console-shell-test")

    assert record.offset >= 0


async def test_on_close_callbacks_are_awaited_at_shutdown_last_first(
    kafka: str, settings: Settings, users_file: Path, tmp_path: Path
) -> None:
    closed: list[str] = []
    app = create_console(
        console_settings(settings, tmp_path, users_file), bootstrap=kafka, health_targets={}
    )

    async with app.router.lifespan_context(app):
        for name in ("admin", "cache"):

            async def close(name: str = name) -> None:
                closed.append(name)

            app.state.console.on_close(close)

    assert ["cache", "admin"] == closed


def test_a_users_file_naming_an_unknown_team_stops_the_console_before_it_serves(
    settings: Settings, tmp_path: Path
) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        "tokens: [{name: cli, role: team, team: uwv/nope, sha256: '" + "0" * 64 + "'}]\n",
        encoding="utf-8",
    )

    with pytest.raises(UserError, match="uwv has no escalation team 'nope'"):
        create_console(
            console_settings(settings, tmp_path, users), bootstrap="127.0.0.1:1", health_targets={}
        )
