"""`ketenbus up --demo`, as a newcomer runs it: healthy, cases move, the demo operator logs
in to the console, and it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from contracts.agency_client import AgencyKeys
from contracts.envelope import CONTENT_TYPE
from services.runtime.config.registry import load_registry
from services.runtime.kafka.embedded import free_port
from tests._testutil import EventFactory

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


def _case_opened_through_the_gateway(
    env: dict[str, str], data_dir: Path, timeout: float
) -> dict[str, object]:
    """Open a case as uwv over HTTP, with a token the CLI made; the case as the tracker has it."""
    token = subprocess.run(
        [*KETENBUS, "gateway", "token", "new", "uwv"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    keys = AgencyKeys.load(data_dir / "demo-keys" / "uwv.key", "uwv")
    case_id = uuid.uuid4()
    value = keys.sign(
        EventFactory(load_registry(data_dir / "demo-registry.yaml")).opened(case_id).to_json()
    )
    answer = httpx.post(
        f"http://127.0.0.1:{env['KETENBUS_GATEWAY_PORT']}/v1/events",
        content=value,
        headers={"content-type": CONTENT_TYPE, "authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert 202 == answer.status_code, answer.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run(
            [*KETENBUS, "case", str(case_id), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if shown.returncode == 0:
            return dict(json.loads(shown.stdout))
        time.sleep(1)
    raise AssertionError(f"case {case_id} sent through the gateway not tracked in {timeout} s")


def _demo_operator_login(console: str, data_dir: Path) -> object:
    """Log in as the demo's operator with the password from the credentials file."""
    lines = (data_dir / "console-credentials.txt").read_text(encoding="utf-8").splitlines()
    password = next(
        line.split()[2] for line in lines if line.split()[:2] == ["password", "operator"]
    )
    with httpx.Client(base_url=console, timeout=10) as client:
        login = client.post("/login", data={"username": "operator", "password": password})
        assert 303 == login.status_code, login.text
        return client.get("/api/whoami").json()


def test_up_with_demo_is_healthy_moves_cases_and_stops_everything(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KETENBUS_BROKER_PORT": str(free_port()),
        "KETENBUS_CONSOLE_PORT": str(free_port()),
        "KETENBUS_GATEWAY_PORT": str(free_port()),
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
        over_http = _case_opened_through_the_gateway(env, tmp_path / "state", timeout=30)
        whoami = _demo_operator_login(
            f"http://127.0.0.1:{env['KETENBUS_CONSOLE_PORT']}", tmp_path / "state"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()

    assert "up" == health["status"]
    services = set(health["services"])  # type: ignore[call-overload]
    assert {"router", "tracker", "escalation", "gateway"} == services
    assert "up" == health["broker"]["state"]  # type: ignore[index]
    assert "open" == case["status"] or "closed" == case["status"]
    assert ("open", "uwv") == (over_http["status"], over_http["holder"])
    assert {"name": "operator", "role": "operator", "team": None} == whoami
    assert 0o600 == stat.S_IMODE((tmp_path / "state" / "console-credentials.txt").stat().st_mode)
    assert 0 == code
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{env['KETENBUS_CONSOLE_PORT']}/healthz", timeout=1)


def _broker_pid(port: str) -> int:
    """The embedded broker's process: the one listening on `port`."""
    found = subprocess.run(
        ["pgrep", "-f", f"listener-url tcp://127.0.0.1:{port} "],
        capture_output=True,
        text=True,
        check=False,
    )
    pids = [int(pid) for pid in found.stdout.split()]
    assert 1 == len(pids), f"expected one broker on port {port}, found {pids}"
    return pids[0]


def _unhealthy(url: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code != 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/healthz never reported the broker down in {timeout} s")


def test_a_killed_embedded_broker_is_reported_and_the_bus_recovers_on_its_own(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "KETENBUS_BROKER_PORT": str(free_port()),
        "KETENBUS_CONSOLE_PORT": str(free_port()),
        "KETENBUS_GATEWAY_PORT": str(free_port()),
        "KETENBUS_DATA_DIR": str(tmp_path / "state"),
        "KETENBUS_LOG_FORMAT": "json",
    }
    env.pop("KETENBUS_KAFKA_BOOTSTRAP", None)
    env.pop("KETENBUS_DATABASE_URL", None)
    health_url = f"http://127.0.0.1:{env['KETENBUS_CONSOLE_PORT']}/healthz"
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [*KETENBUS, "up", "--demo"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        _wait_healthy(health_url, process, timeout=60)
        first = _broker_pid(env["KETENBUS_BROKER_PORT"])
        os.kill(first, signal.SIGKILL)
        down = _unhealthy(health_url, timeout=20)
        _wait_healthy(health_url, process, timeout=60)
        second = _broker_pid(env["KETENBUS_BROKER_PORT"])
        before = {c["case_id"] for c in _cases(env)}
        moved = _new_case_with_accepted_handoff(env, before, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()

    assert "down" == down["status"]
    assert first != second
    assert moved["case_id"] not in before
    assert 0 == code


def _cases(env: dict[str, str]) -> list[dict[str, object]]:
    listed = subprocess.run(
        [*KETENBUS, "cases", "--json", "--limit", "1000"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return list(json.loads(listed.stdout))


def _new_case_with_accepted_handoff(
    env: dict[str, str], before: set[object], timeout: float
) -> dict[str, object]:
    """A case opened after `before` was taken whose handoff was accepted: the bus moves again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for summary in _cases(env):
            if summary["case_id"] in before:
                continue
            shown = subprocess.run(
                [*KETENBUS, "case", str(summary["case_id"]), "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            case = json.loads(shown.stdout)
            if any(e["type"] == "handoff-accepted" and e["applied"] for e in case["timeline"]):
                return dict(case)
        time.sleep(2)
    raise AssertionError(f"no new case moved in {timeout} s after the broker came back")
