"""Every verb answers --help, and a user error is one line on stderr, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import _running_bus as running_bus
from services.cli import app
from services.cli._running_bus import RunningBus
from services.runtime.kafka.embedded import free_port

KETENBUS = [sys.executable, "-c", "from services.cli import main; main()"]
VERBS = [
    ["up"],
    ["broker"],
    ["demo"],
    ["emit"],
    ["gateway"],
    ["gateway", "token"],
    ["gateway", "token", "new"],
    ["gateway", "token", "list"],
    ["gateway", "token", "revoke"],
    ["webhooks"],
    ["webhooks", "subscribe"],
    ["webhooks", "list"],
    ["webhooks", "deliveries"],
    ["webhooks", "replay"],
    ["webhooks", "end"],
    ["case"],
    ["cases"],
    ["signals"],
    ["simulate"],
    ["trace"],
    ["acl"],
    ["keys"],
    ["keys", "new"],
    ["keys", "user"],
    ["audit"],
    ["audit", "verify"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "replay"],
    ["dlq", "counts"],
    ["lag"],
    ["tail"],
    ["alerts"],
    ["alerts", "ack"],
    ["alerts", "resolve"],
    ["contracts"],
    ["contracts", "export"],
    ["contracts", "check"],
    ["contracts", "asyncapi"],
    ["bench"],
    ["bench", "router"],
    ["bench", "latency"],
    ["bench", "tracker"],
    ["bench", "timers"],
    ["bench", "memory"],
]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KETENBUS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input=stdin,
        check=False,
    )


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb: list[str]) -> None:
    """`ketenbus VERB --help` exits 0 and prints the verb's usage."""
    # In this process, through typer's runner: the help is the same, and forty-odd fresh
    # interpreters (1-1.5 s of start-up each) cost more than the rest of this module.
    result = CliRunner().invoke(app, [*verb, "--help"])

    assert 0 == result.exit_code, result.output
    assert "Usage" in result.output


def test_the_console_script_prints_its_help_from_a_fresh_process() -> None:
    """`ketenbus --help` in a process of its own: every verb's module imports at start-up."""
    result = run("--help")

    assert 0 == result.returncode, result.stderr
    assert all(verb[0] in result.stdout for verb in VERBS)


def _one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert 0 != result.returncode
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 == len(lines), result.stderr
    return lines[0]


def test_a_broker_port_already_taken_is_reported_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        line = _one_line_failure(run("broker", "--port", str(port)))

    assert f"port {port}" in line
    assert "already in use" in line


def test_emitting_as_an_unknown_agency_is_refused() -> None:
    line = _one_line_failure(run("emit", "--as", "nobody", "-", stdin="{}"))

    assert "'nobody' is not in the registry" in line


def test_emitting_is_judged_by_the_registry_the_running_bus_runs_on(tmp_path: Path) -> None:
    bus_registry = Path(__file__).resolve().parents[3] / "deploy" / "agencies.yaml"
    port = free_port()
    running_bus.announce(
        tmp_path, RunningBus(f"127.0.0.1:{port}", bus_registry, demo=True, pid=os.getpid())
    )
    env = {
        "KETENBUS_DATA_DIR": str(tmp_path),
        "KETENBUS_BROKER_PORT": str(port),
        # Read, this would fail start-up: the bus's own registry is what counts.
        "KETENBUS_REGISTRY": str(tmp_path / "missing.yaml"),
    }

    line = _one_line_failure(run("emit", "--as", "nobody", "-", env=env, stdin="{}"))

    assert f"the registry the bus on 127.0.0.1:{port} runs on ({bus_registry})" in line


def test_a_bus_file_left_by_a_killed_bus_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    running_bus.announce(
        tmp_path,
        RunningBus(f"127.0.0.1:{port}", tmp_path / "x.yaml", demo=True, pid=int(gone.stdout)),
    )
    env = {"KETENBUS_DATA_DIR": str(tmp_path), "KETENBUS_BROKER_PORT": str(port)}

    line = _one_line_failure(run("emit", "--as", "nobody", "-", env=env, stdin="{}"))

    assert "'nobody' is not in the registry (" in line
    assert "KETENBUS_REGISTRY" in line


def test_emitting_an_invalid_event_names_the_field(tmp_path: Path) -> None:
    line = _one_line_failure(run("emit", "--as", "belastingdienst", "-", stdin='{"type": 1}'))

    assert "event 1 is not valid" in line
    assert "type" in line


def test_an_invalid_registry_stops_start_up_naming_the_entry(tmp_path: Path) -> None:
    registry = Path(__file__).resolve().parents[3] / "deploy" / "agencies.yaml"
    broken = tmp_path / "agencies.yaml"
    broken.write_text(registry.read_text().replace('"00000099000000000013"', '"13"'))
    env = {"KETENBUS_REGISTRY": str(broken), "PATH": "/usr/bin:/bin"}

    line = _one_line_failure(run("emit", "--as", "uwv", "-", env=env, stdin="{}"))

    assert "agencies[2] (uwv).oin" in line


def test_the_broker_verb_serves_kafka_and_stops_cleanly_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [*KETENBUS, "broker", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        ready = ""
        for _ in range(10):  # a few log lines come first
            ready = process.stderr.readline()
            if "broker on" in ready:
                break
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()

    assert f"broker on 127.0.0.1:{port}" in ready
    assert 0 == code
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_keys_user_with_an_unknown_team_is_one_line() -> None:
    result = run("keys", "user", "x", "--role", "team", "--team", "uwv/nope", "--token")

    assert "ketenbus: --team: uwv has no escalation team 'nope'" == _one_line_failure(result)
