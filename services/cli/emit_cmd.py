"""`ketenbus emit`: publish events to an agency's outbox, as that agency's system would."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.parse import parse_event
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError


def _read_events(source: str) -> list[bytes]:
    """One JSON event, or JSON lines with one event each."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {source}: {exc.strerror}") from None
    try:
        json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:
            return [line.encode() for line in lines]
    return [text.strip().encode()]


def _keys(settings: Settings, code: str, given: Path | None) -> AgencyKeys:
    """The agency's key pair: `--key`, else the one `ketenbus keys new` made, else the demo's."""
    from services.demo.keys import keys_dir

    candidates = [given] if given else [settings.data_dir / "keys", keys_dir(settings.data_dir)]
    for candidate in candidates:
        path = candidate if given else candidate / f"{code}.key"
        if path.is_file():
            try:
                return AgencyKeys.load(path, code)
            except ValueError as exc:
                raise UserError(str(exc)) from None
    if given:
        raise UserError(f"no key file {given}")
    raise UserError(
        f"no private key for agency {code!r} in {candidates[0]} or {candidates[1]}: "
        f"pass --key FILE (made by `ketenbus keys new {code}`)"
    )


def emit(
    source: str = typer.Argument("-", metavar="[FILE|-]", help="The event(s); - reads stdin."),
    as_agency: str = typer.Option(..., "--as", metavar="CODE", help="The emitting agency's code."),
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="The agency's private key (default: DATA_DIR/keys/CODE.key, else the demo's).",
        ),
    ] = None,
    raw: bool = typer.Option(
        False,
        "--raw",
        help="Send the bytes as given: not validated, not signed (to see the bus refuse them).",
    ),
) -> None:
    """Sign one event (or JSON lines) as agency CODE and publish it to `agency.CODE.outbox`,
    keyed by its case id."""
    from aiokafka import AIOKafkaProducer

    from services.cli._running_bus import running_bus
    from services.runtime.config.registry import load_registry
    from services.runtime.kafka.clients import client_security
    from services.runtime.observability.metrics import emit_span, setup_tracing

    settings = Settings()
    bootstrap = settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"
    # Judged by the registry the bus on `bootstrap` runs on, which `up --demo` makes itself.
    bus = running_bus(settings.data_dir, bootstrap)
    registry_path = bus.registry if bus is not None else settings.registry
    if load_registry(registry_path).agency(as_agency) is None:
        where = (
            f"the registry the bus on {bootstrap} runs on ({registry_path})"
            if bus is not None
            else f"the registry ({registry_path}, KETENBUS_REGISTRY)"
        )
        raise UserError(f"agency {as_agency!r} is not in {where}")
    messages: list[tuple[bytes | None, bytes]] = []
    for number, value in enumerate(_read_events(source), 1):
        key: bytes | None = None
        try:
            key = str(parse_event(value).subject).encode()
        except ValueError as exc:
            if not raw:
                raise UserError(
                    f"event {number} is not valid ({exc}); --raw sends it anyway"
                ) from None
        messages.append((key, value))
    if not raw:
        keys = _keys(settings, as_agency, key_file)
        messages = [(key, keys.sign(value)) for key, value in messages]

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            request_timeout_ms=10_000,
            **client_security(settings),
        )
        try:
            await asyncio.wait_for(producer.start(), 15)
        except Exception:  # noqa: BLE001 - any failure to connect is reported in one line
            await producer.stop()
            raise UserError(
                f"no Kafka broker answers on {bootstrap}; is `ketenbus up` running?"
            ) from None
        topic = topics.outbox(as_agency)
        try:
            for key, value in messages:
                with emit_span("emit", topic, key) as trace_headers:
                    meta = await producer.send_and_wait(
                        topic,
                        value,
                        key=key,
                        headers=[("content-type", b"application/cloudevents+json"), *trace_headers],
                    )
                print(f"sent to {meta.topic} partition {meta.partition} offset {meta.offset}")
        finally:
            await producer.stop()

    tracing = setup_tracing(settings, "emit")
    try:
        asyncio.run(send())
    finally:
        if tracing is not None:
            tracing.shutdown()


def register(app: typer.Typer) -> None:
    app.command()(emit)
