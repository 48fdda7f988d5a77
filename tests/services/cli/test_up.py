"""`ketenbus up --demo`, as a newcomer runs it: healthy, cases move, and it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.runtime.embedded import free_port

pytestmark = pytest.mark.broker

KETENBUS = [sys.executable, "-c", "from services.cli import main; main()"]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert process.poll() is None, "ketenbus up exited early"
        try:
            response = httpx.get(url, timeout=2)
            last = response.json()
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"not healthy in {timeout} s: {last}")


def _case_with_accepted_handoff(env: dict[str, str], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(
            [*KETENBUS, "cases", "--json"], capture_output=True, text=True, env=env, check=True
        )
        for summary in json.loads(listed.stdout):
            shown = subprocess.run(
                [*KETENBUS, "case", str(summary["case_id"]), "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            case = json.loads(shown.stdout)
            if any(
                entry["type"] == "handoff-accepted" and entry["applied"]
                for entry in case["timeline"]
            ):
                return dict(case)
        time.sleep(2)
    raise AssertionError(f"no case with an accepted handoff in {timeout} s")


def test_up_with_demo_is_healthy_moves_cases_and_stops_everything(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KETENBUS_BROKER_PORT": str(free_port()),
        "KETENBUS_CONSOLE_PORT": str(free_port()),
        "KETENBUS_DATA_DIR": str(tmp_path / "state"),
        "KETENBUS_LOG_FORMAT": "json",
    }
    env.pop("KETENBUS_KAFKA_BOOTSTRAP", None)
    env.pop("KETENBUS_DATABASE_URL", None)
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [*KETENBUS, "up", "--demo"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        health = _wait_healthy(
            f"http://127.0.0.1:{env['KETENBUS_CONSOLE_PORT']}/healthz", process, timeout=60
        )
        case = _case_with_accepted_handoff(env, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()

    assert "up" == health["status"]
    assert {"router", "tracker", "escalation"} == set(health["services"])  # type: ignore[arg-type]
    assert "up" == health["broker"]["state"]  # type: ignore[index]
    assert "open" == case["status"] or "closed" == case["status"]
    assert 0 == code
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{env['KETENBUS_CONSOLE_PORT']}/healthz", timeout=1)
