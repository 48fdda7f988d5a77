"""Beside an external broker a service refuses the one-machine defaults: SQLite, and for the
console a random session secret; on loopback (development, tests) they stay the defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.runtime.config.production import external_broker, unsafe_defaults
from services.runtime.config.settings import Settings

POSTGRES = "postgresql+asyncpg://ketenbus@db.example.internal:5432/ketenbus"
REPO = Path(__file__).resolve().parents[3]
# Not a loopback address, yet it stays on this machine should the refusal ever fail.
ELSEWHERE = "0.0.0.0:1"


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


@pytest.mark.parametrize(
    "bootstrap", [None, "127.0.0.1:9092", "localhost:9092", "[::1]:9092", "127.0.0.1:1,127.0.0.2:2"]
)
def test_on_loopback_the_one_machine_defaults_stand(bootstrap: str | None) -> None:
    """Development, tests and `ketenbus up`: SQLite and a random secret are fine."""
    settings = _settings(kafka_bootstrap=bootstrap)

    assert (False, []) == (external_broker(settings), unsafe_defaults(settings, console=True))


@pytest.mark.parametrize("bootstrap", ["kafka-1:9092", "127.0.0.1:9092,kafka-2:9092", "10.0.0.5"])
def test_beside_an_external_broker_sqlite_is_refused_naming_the_setting(bootstrap: str) -> None:
    """One non-loopback server makes the broker external; the store must then be PostgreSQL."""
    problems = unsafe_defaults(_settings(kafka_bootstrap=bootstrap))

    assert 1 == len(problems)
    assert "KETENBUS_DATABASE_URL" in problems[0]


def test_a_console_beside_an_external_broker_needs_one_session_secret() -> None:
    """Without KETENBUS_CONSOLE_SECRET the replicas would reject each other's sessions."""
    settings = _settings(kafka_bootstrap="kafka-1:9092", database_url=POSTGRES)

    (problem,) = unsafe_defaults(settings, console=True)

    assert "KETENBUS_CONSOLE_SECRET" in problem
    assert [] == unsafe_defaults(settings)


def test_postgresql_and_a_secret_beside_an_external_broker_are_safe() -> None:
    settings = _settings(
        kafka_bootstrap="kafka-1:9092", database_url=POSTGRES, console_secret=SecretStr("s" * 32)
    )

    assert [] == unsafe_defaults(settings, console=True)


def _start(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, "KETENBUS_KAFKA_BOOTSTRAP": ELSEWHERE, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("service", ["router", "tracker", "escalation", "gateway"])
def test_a_service_on_sqlite_beside_an_external_broker_does_not_start(service: str) -> None:
    """It exits at once with one line naming itself and the setting, no traceback."""
    done = _start(f"services.{service}")

    assert 1 == done.returncode
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"ketenbus-{service}: refusing to start: the store is SQLite")


def test_a_console_without_a_secret_beside_an_external_broker_does_not_start() -> None:
    done = _start("services.console", KETENBUS_DATABASE_URL=POSTGRES)

    assert 1 == done.returncode
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ketenbus console: refusing to start: KETENBUS_CONSOLE_SECRET is unset")
