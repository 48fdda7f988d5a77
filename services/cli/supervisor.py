"""`ketenbus up`: the embedded broker if needed, every service, the console.

Each service runs in its own process (as it would in production), so a crash
of one is seen, logged and the process started again; the console checks
them all on /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from contracts.registry import AgencyRegistry
from services.cli import _running_bus as running_bus
from services.cli._running_bus import RunningBus
from services.console.app import create_console
from services.demo.console_users import credentials_path, demo_console_users
from services.demo.keys import demo_registry
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SESSION_TIMEOUT_MS,
    EmbeddedBroker,
    free_port,
)
from services.runtime.kafka.topics import bus_topics, ensure_topics
from services.runtime.observability.logging import get_logger
from services.runtime.process.http import http_server
from services.runtime.store.engine import make_engine, migrate

log = get_logger("ketenbus.up")

SERVICES = ("router", "tracker", "escalation", "gateway")


@dataclass
class Child:
    """One supervised service process."""

    name: str
    module: str
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    health_url: str = ""
    args: list[str] = field(default_factory=list)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()


def services_fetch_wait_ms(settings: Settings, *, embedded: bool) -> int:
    """The services' fetch wait: the setting, or on the embedded broker its own unless set."""
    if embedded and "kafka_fetch_max_wait_ms" not in settings.model_fields_set:
        return EMBEDDED_FETCH_MAX_WAIT_MS
    return settings.kafka_fetch_max_wait_ms


async def run_bus(settings: Settings, *, demo: bool) -> None:
    """Run until SIGINT or SIGTERM, then stop everything this started."""
    registry = load_registry(settings.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    embedded: EmbeddedBroker | None = None
    session_timeout = settings.kafka_session_timeout_ms
    bootstrap = settings.kafka_bootstrap
    # The Kafka security options of the clients started here and in the children.
    kafka = settings
    if bootstrap is None:
        embedded = EmbeddedBroker(settings.broker_port, log_file=settings.data_dir / "broker.log")
        embedded.start()
        bootstrap = embedded.bootstrap
        session_timeout = EMBEDDED_SESSION_TIMEOUT_MS
        # The embedded broker speaks PLAINTEXT only, whatever the environment asks for.
        kafka = settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
        log.info("embedded broker started", bootstrap=bootstrap, storage="memory-only")
    children: list[Child] = []
    registry_path, console_settings = settings.registry, kafka
    if demo:
        registry_path, console_settings = _demo_setup(kafka, registry)
    try:
        await ensure_topics(
            bootstrap, bus_topics(registry), partitions=settings.topic_partitions, settings=kafka
        )
        engine = make_engine(settings.database)
        await migrate(engine)
        await engine.dispose()
        env = {
            **os.environ,
            "KETENBUS_KAFKA_BOOTSTRAP": bootstrap,
            "KETENBUS_KAFKA_SESSION_TIMEOUT_MS": str(session_timeout),
            "KETENBUS_KAFKA_FETCH_MAX_WAIT_MS": str(
                services_fetch_wait_ms(settings, embedded=embedded is not None)
            ),
            "KETENBUS_KAFKA_SECURITY_PROTOCOL": kafka.kafka_security_protocol,
            "KETENBUS_DATABASE_URL": settings.database,
            "KETENBUS_REGISTRY": str(registry_path.resolve()),
        }
        children.extend(_children(env, demo=demo))
        for child in children:
            await child.start()
        targets = {c.name: c.health_url for c in children if c.health_url}
        console_app = create_console(
            console_settings,
            bootstrap=bootstrap,
            health_targets=targets,
            registry_path=registry_path,
        )
        console = http_server(console_app, settings.console_host, settings.console_port)
        serving = asyncio.create_task(console.serve())
        _print_banner(settings, bootstrap, embedded is not None, demo)
        running_bus.announce(
            settings.data_dir, RunningBus(bootstrap, registry_path, demo, os.getpid())
        )
        restart: Callable[[], Awaitable[None]] | None = None
        if embedded is not None:
            restart = functools.partial(
                _restart_broker,
                embedded,
                children,
                topic_names=bus_topics(registry),
                settings=settings,
                kafka=kafka,
                stop=stop,
            )
        await _watch(children, stop, restart)
        console.should_exit = True
        await serving
    finally:
        running_bus.withdraw(settings.data_dir)
        await asyncio.gather(*(child.stop() for child in children))
        if embedded is not None:
            embedded.stop()
        log.info("bus stopped")


def _children(env: dict[str, str], *, demo: bool) -> list[Child]:
    """A process per service, each with a health port of its own; the demo's agencies last."""
    children: list[Child] = []
    for name in SERVICES:
        port = free_port()
        child = Child(name, f"services.{name}", {**env, "KETENBUS_HEALTH_PORT": str(port)})
        child.health_url = f"http://127.0.0.1:{port}/healthz"
        children.append(child)
    if demo:
        children.append(Child("demo", "services.demo", env))
    return children


def _demo_setup(settings: Settings, registry: AgencyRegistry) -> tuple[Path, Settings]:
    """The demo's registry file and the console's settings with the demo's logins."""
    # The demo plays every agency: the bus checks their signatures against demo keys.
    registry_path = demo_registry(settings.data_dir, registry)
    if settings.console_users is not None:
        return registry_path, settings
    users = demo_console_users(settings.data_dir, registry)
    return registry_path, settings.model_copy(update={"console_users": users})


async def _watch(
    children: list[Child],
    stop: asyncio.Event,
    restart_broker: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Restart a child that exits on its own, with a growing pause, and the embedded
    broker if it dies; return on stop."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if restart_broker is not None and not stop.is_set():
            await restart_broker()
        for child in children:
            process = child.process
            if stop.is_set() or process is None or process.returncode is None:
                continue
            child.restarts += 1
            pause = min(2.0**child.restarts, 30.0)
            log.error(
                "service exited; restarting",
                service=child.name,
                exit_code=process.returncode,
                restarts=child.restarts,
                pause_s=pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if not stop.is_set():
                await child.start()


async def _restart_broker(
    embedded: EmbeddedBroker,
    children: list[Child],
    *,
    topic_names: list[str],
    settings: Settings,
    kafka: Settings,
    stop: asyncio.Event,
) -> None:
    """If the embedded broker died, start it again, create the topics, restart the services.

    It keeps everything in memory: the topics, their messages and the groups' offsets
    are gone with it (what was applied is in the store). The services are stopped
    before it comes back and started after, so they join the new broker's groups
    fresh, reading its topics from the start.
    """
    if embedded.running:
        return
    log.error(
        "embedded broker exited; restarting it (memory-only: its topics and messages are gone)",
        bootstrap=embedded.bootstrap,
    )
    embedded.stop()
    # The services go first: left running, one that finishes a batch on the new broker
    # commits its old positions into the new broker's empty groups, above the new logs'
    # ends, and would then never read what lands below them.
    await asyncio.gather(*(child.stop() for child in children))
    while not stop.is_set():
        try:
            embedded.start()
            await ensure_topics(
                embedded.bootstrap,
                topic_names,
                partitions=settings.topic_partitions,
                settings=kafka,
            )
            break
        except Exception as exc:
            log.exception("embedded broker did not come back; trying again", error=str(exc))
            embedded.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    if stop.is_set():
        return
    for child in children:
        await child.start()
    log.info("embedded broker restarted; topics created; services restarted")


# The embedded broker enforces none of the topic table (README "Broker-level isolation").
EMBEDDED_BROKER_WARNING = (
    "",
    "WARNING: the embedded broker has no authentication and no ACLs. Any local",
    "  client can read every agency's inbox, the case log (ketenbus.cases) and the",
    "  audit topic (ketenbus.audit), join any consumer group and write into any",
    "  agency's outbox. For development and tests only: production runs on Apache",
    "  Kafka with SASL, TLS and ACLs (docker-compose.yml).",
)


def _print_banner(settings: Settings, bootstrap: str, embedded: bool, demo: bool) -> None:
    console = f"http://{settings.console_host}:{settings.console_port}"
    lines = [
        "",
        "Ketenbus is up.",
        f"  broker   {bootstrap}" + ("  (embedded, memory-only)" if embedded else ""),
        f"  console  {console}/",
        f"  gateway  http://{settings.gateway_host}:{settings.gateway_port}/v1/events"
        "  (CloudEvents over HTTP; tokens: ketenbus gateway token new CODE)",
        f"  health   {console}/healthz",
        f"  store    {settings.database}",
        *_console_logins(settings, demo),
        *(EMBEDDED_BROKER_WARNING if embedded else ()),
        "",
        "Follow the cases:",
        "  ketenbus cases                 the most recent cases, their holder and status",
        "  ketenbus case CASE_ID          one case's timeline and current holder",
    ]
    if demo:
        lines.append("  (simulated agencies are opening and handing off cases now)")
    else:
        lines.append("  ketenbus emit --as belastingdienst event.json   send an event yourself")
    lines.append("Stop with Ctrl-C.\n")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _console_logins(settings: Settings, demo: bool) -> list[str]:
    if settings.console_users is not None:
        return [f"  logins   users file {settings.console_users}"]
    if demo:
        return [f"  logins   {credentials_path(settings.data_dir)}  (demo users and tokens)"]
    return ["  logins   none: set KETENBUS_CONSOLE_USERS (entries: `ketenbus keys user`)"]
