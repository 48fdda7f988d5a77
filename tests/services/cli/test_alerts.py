"""`ketenbus alerts` against a real console served by uvicorn on a loopback port.

The command runs as a subprocess (as a team would run it), so the console
keeps serving in the test's event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from contracts import topics
from contracts.parse import parse_event
from services.runtime.kafka.embedded import free_port
from tests._testutil import keyed, read_until
from tests.services.console.conftest import (  # noqa: F401 - fixtures used by name
    CREDENTIALS,
    TEAM,
    ConsoleHarness,
    console,
    users_file,
)
from tests.services.console.test_escalations import OTHER_TEAM, insert_escalation, served

pytestmark = pytest.mark.broker

KETENBUS = [sys.executable, "-c", "from services.cli import main; main()"]
TIMEOUT_S = 60.0


@pytest.fixture
async def url(console: ConsoleHarness) -> AsyncIterator[str]:  # noqa: F811 - the fixture
    async with served(console.app) as base:
        yield base


def _env(url: str, token: str | None = CREDENTIALS.token) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_CONSOLE_")}
    env["KETENBUS_CONSOLE_URL"] = url
    if token is not None:
        env["KETENBUS_CONSOLE_TOKEN"] = token
    return env


async def ketenbus(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI without blocking the console that serves it; (exit code, out, err)."""
    process = await asyncio.create_subprocess_exec(
        *KETENBUS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _one_line(code: int, err: str) -> str:
    assert 0 != code
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 == len(lines), err
    return lines[0]


async def test_once_prints_the_teams_open_escalations_as_a_table(
    console: ConsoleHarness,  # noqa: F811 - the fixture
    url: str,
) -> None:
    mine = await insert_escalation(console.state.engine, level=2)
    theirs = await insert_escalation(console.state.engine, team=OTHER_TEAM)

    code, out, err = await ketenbus("alerts", "--team", TEAM, "--once", env=_env(url))

    assert 0 == code, err
    header, row = out.splitlines()
    assert header.split() == ["LEVEL", "AGE", "STATUS", "ESCALATION", "CASE", "TRIGGER", "CAUSE"]
    assert ["L2", "1", "h", "0", "min", "raised", str(mine["escalation_id"])] == row.split()[:7]
    assert str(mine["case_id"]) in row
    assert str(theirs["escalation_id"]) not in out


async def test_once_with_json_prints_one_object_per_line(
    console: ConsoleHarness,  # noqa: F811 - the fixture
    url: str,
) -> None:
    first = await insert_escalation(console.state.engine)
    second = await insert_escalation(console.state.engine)

    code, out, err = await ketenbus("alerts", "--once", "--json", env=_env(url))

    assert 0 == code, err
    items = [json.loads(line) for line in out.splitlines()]
    assert {str(first["escalation_id"]), str(second["escalation_id"])} == {
        item["escalation_id"] for item in items
    }
    assert {TEAM} == {item["team"] for item in items}


async def test_following_prints_the_list_then_each_change_and_stops_at_its_limit(
    console: ConsoleHarness,  # noqa: F811 - the fixture
    url: str,
) -> None:
    engine = console.state.engine
    first = await insert_escalation(engine)
    process = await asyncio.create_subprocess_exec(
        *KETENBUS,
        *("alerts", "--team", TEAM, "--json", "--limit", "1", "--timeout", "30"),
        env=_env(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    listed = json.loads(await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S))
    later = await insert_escalation(engine, level=3)
    changed = json.loads(await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S))
    code = await asyncio.wait_for(process.wait(), TIMEOUT_S)

    assert str(first["escalation_id"]) == listed["escalation_id"]
    assert (str(later["escalation_id"]), 3, "raised") == (
        changed["escalation_id"],
        changed["level"],
        changed["status"],
    )
    assert 0 == code


async def test_following_stops_at_its_timeout(url: str) -> None:
    code, out, err = await ketenbus("alerts", "--timeout", "1", env=_env(url))

    assert 0 == code, err
    assert "no open escalations" == out.strip()


async def test_ack_and_resolve_send_events_in_the_teams_name(
    console: ConsoleHarness,  # noqa: F811 - the fixture
    url: str,
    kafka: str,
) -> None:
    mine = await insert_escalation(console.state.engine)
    escalation_id = str(mine["escalation_id"])

    ack = await ketenbus("alerts", "ack", escalation_id, "--note", "Bellen", env=_env(url))
    resolve = await ketenbus(
        *("alerts", "resolve", escalation_id, "--outcome", "handoff-forced"),
        *("--handoff-to", "gm0363", "--json"),
        env=_env(url),
    )

    assert 0 == ack[0], ack[2]
    assert ack[1].startswith("acknowledgement sent as event ")
    assert 0 == resolve[0], resolve[2]
    event_id = json.loads(resolve[1])["event_id"]
    records = await read_until(kafka, topics.CASES, keyed(mine["case_id"]), count=2)
    events = {str(e.id): e for e in (parse_event(r.value or b"") for r in records)}
    resolution = events[event_id]
    assert ("escalation-resolved", "handoff-forced", "gm0363", "belastingdienst") == (
        resolution.name,
        resolution.data.outcome,
        resolution.data.handoff_to,
        resolution.data.team.agency,
    )
    assert ["escalation-acknowledged"] == [e.name for k, e in events.items() if k != event_id]


async def test_refusals_are_one_line_on_stderr(
    console: ConsoleHarness,  # noqa: F811 - the fixture
    url: str,
) -> None:
    """An unknown, another team's or a closed escalation, a wrong or missing token and
    another team each give one line on stderr naming the refusal."""
    engine = console.state.engine
    theirs = await insert_escalation(engine, team=OTHER_TEAM)
    done = await insert_escalation(engine, status="resolved")

    # Each is refused and changes nothing: the six processes run side by side.
    unknown, other, closed, bad_token, no_token, wrong_team = await asyncio.gather(
        ketenbus("alerts", "ack", str(uuid.uuid4()), env=_env(url)),
        ketenbus("alerts", "ack", str(theirs["escalation_id"]), env=_env(url)),
        ketenbus(
            "alerts", "resolve", str(done["escalation_id"]), "--outcome", "other", env=_env(url)
        ),
        ketenbus("alerts", "--once", env=_env(url, token="wrong")),
        ketenbus("alerts", "--once", env=_env(url, token=None)),
        ketenbus("alerts", "--team", OTHER_TEAM, "--once", env=_env(url)),
    )

    assert "(404)" in _one_line(unknown[0], unknown[2])
    assert "(403)" in _one_line(other[0], other[2])
    assert f"(409): escalation {done['escalation_id']} is already resolved" in _one_line(
        closed[0], closed[2]
    )
    assert "(401)" in _one_line(bad_token[0], bad_token[2])
    assert "KETENBUS_CONSOLE_TOKEN" in _one_line(no_token[0], no_token[2])
    assert f"the token is for team {TEAM}" in _one_line(wrong_team[0], wrong_team[2])


async def test_a_console_that_does_not_answer_is_one_line_on_stderr() -> None:
    down = f"http://127.0.0.1:{free_port()}"

    code, _, err = await ketenbus("alerts", "--once", env=_env(down))

    assert f"the console at {down} does not answer" in _one_line(code, err)
