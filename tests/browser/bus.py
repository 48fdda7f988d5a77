"""A whole bus for the browser tests: `ketenbus up` in a process of its own, as an operator runs it.

It runs without the demo's simulated agencies, so the only cases on it are the
tests' own; on a registry that holds the test keys' public halves (so the tests
can sign what they emit) and a users file with one operator and one member of
the escalation team the tests' escalations alert. Its data directory (SQLite,
broker log, bus log) is the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from contracts.events import TeamRef
from contracts.registry import AgencyRegistry
from services.console.users import hash_password
from services.runtime.kafka.embedded import free_port

KETENBUS = [sys.executable, "-c", "from services.cli import main; main()"]

OPERATOR = ("operator", "operator-test-password")
TEAM_MEMBER = ("schuldhulp", "team-test-password")
TEAM = TeamRef(agency="gm0363", team="schuldhulp-teamleiding")
"""Level 1 of the `schulden` category's escalation path in deploy/agencies.yaml."""

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Bus:
    """A running bus: where its console and its broker answer."""

    console: str
    bootstrap: str
    data_dir: Path
    log: Path


def write_registry(registry: AgencyRegistry, path: Path) -> Path:
    """`registry` as a YAML file the bus can load (as `ketenbus up --demo` writes its own)."""
    document = registry.model_dump(mode="json", exclude_defaults=False)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def write_users(path: Path) -> Path:
    """The console's users file: the operator and one member of TEAM, argon2-hashed."""
    users = [
        {"name": OPERATOR[0], "role": "operator", "password": hash_password(OPERATOR[1])},
        {
            "name": TEAM_MEMBER[0],
            "role": "team",
            "team": f"{TEAM.agency}/{TEAM.team}",
            "password": hash_password(TEAM_MEMBER[1]),
        },
    ]
    path.write_text(yaml.safe_dump({"users": users}, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def start_bus(directory: Path, registry: AgencyRegistry) -> tuple[Bus, subprocess.Popen[bytes]]:
    """Start `ketenbus up` on free ports; return once its /healthz says everything is up."""
    directory.mkdir(parents=True, exist_ok=True)
    console_port, broker_port = free_port(), free_port()
    env = {
        **os.environ,
        "KETENBUS_BROKER_PORT": str(broker_port),
        "KETENBUS_CONSOLE_PORT": str(console_port),
        "KETENBUS_GATEWAY_PORT": str(free_port()),
        "KETENBUS_DATA_DIR": str(directory / "state"),
        "KETENBUS_REGISTRY": str(write_registry(registry, directory / "registry.yaml")),
        "KETENBUS_CONSOLE_USERS": str(write_users(directory / "console-users.yaml")),
        "KETENBUS_LOG_FORMAT": "json",
    }
    # The bus starts its own broker and keeps its own SQLite store, whatever the shell says.
    for name in ("KETENBUS_KAFKA_BOOTSTRAP", "KETENBUS_DATABASE_URL"):
        env.pop(name, None)
    bus = Bus(
        console=f"http://127.0.0.1:{console_port}",
        bootstrap=f"127.0.0.1:{broker_port}",
        data_dir=directory / "state",
        log=directory / "up.log",
    )
    with bus.log.open("wb") as log:
        # A session of its own: if it does not stop on SIGTERM, its whole group is killed.
        process = subprocess.Popen(
            [*KETENBUS, "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            start_new_session=True,
        )
    try:
        _wait_healthy(bus, process)
    except BaseException:
        stop_bus(process)
        raise
    return bus, process


def stop_bus(process: subprocess.Popen[bytes]) -> int:
    """Stop the bus and everything it started; its exit code (negative: it had to be killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the session this started (services, broker) goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout=STOP_TIMEOUT_S)


def _wait_healthy(bus: Bus, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ketenbus up exited with {process.returncode}:\n{_tail(bus)}")
        try:
            response = httpx.get(f"{bus.console}/healthz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"bus not healthy in {START_TIMEOUT_S} s: {last}\n{_tail(bus)}")


def _tail(bus: Bus, lines: int = 40) -> str:
    try:
        return "\n".join(bus.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
