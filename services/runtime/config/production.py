"""What a service refuses to start with beside a real Kafka cluster: the one-machine defaults.

The defaults run the whole bus on one machine: SQLite under `.ketenbus/`, a
console session secret drawn at random by each process. Beside an external
broker (any bootstrap server that is not a loopback address, as in
docker-compose.yml and Kubernetes) there are several instances of each
service, and those defaults break quietly: every instance would keep its own
SQLite file (two routers, two custody ledgers), and every console replica
would reject the sessions the others signed. So a service refuses to start
then, with one line saying what to set, rather than run wrong.
"""

from __future__ import annotations

import ipaddress

from services.runtime.config.settings import Settings
from services.runtime.errors import UserError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(server: str) -> str:
    server = server.strip()
    if server.startswith("["):  # [::1]:9092
        return server[1 : server.index("]")] if "]" in server else server
    return server.rsplit(":", 1)[0] if server.count(":") == 1 else server


def external_broker(settings: Settings) -> bool:
    """Whether the bus runs beside a Kafka that is not on this machine's loopback."""
    servers = [s for s in (settings.kafka_bootstrap or "").split(",") if s.strip()]
    return any(not _loopback(_host(server)) for server in servers)


def unsafe_defaults(settings: Settings, *, console: bool = False) -> list[str]:
    """Each one-machine default still in force beside an external broker, with what to set."""
    if not external_broker(settings):
        return []
    problems = []
    if settings.database.startswith("sqlite"):
        problems.append(
            "the store is SQLite (KETENBUS_DATABASE_URL "
            f"{'unset' if not settings.database_url else 'is sqlite'}): beside an external "
            "broker run every instance on one PostgreSQL, set KETENBUS_DATABASE_URL to "
            "postgresql+asyncpg://..."
        )
    if console and settings.console_secret is None:
        problems.append(
            "KETENBUS_CONSOLE_SECRET is unset: each console process would sign sessions with "
            "a random secret of its own, and its replicas would reject each other's; set it "
            "to one secret (e.g. `openssl rand -hex 32`) for every replica"
        )
    return problems


def refuse_unsafe_defaults(settings: Settings, *, console: bool = False) -> None:
    """UserError naming every unsafe default (`unsafe_defaults`); nothing if there is none."""
    problems = unsafe_defaults(settings, console=console)
    if problems:
        raise UserError("refusing to start: " + "; ".join(problems))
