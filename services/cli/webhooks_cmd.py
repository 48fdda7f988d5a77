"""`ketenbus webhooks`: an agency's webhook subscriptions, their deliveries, and replay."""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli.cases_cmd import read_store
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.store.engine import write_transaction
from services.runtime.text.terminal import format_time, table

app = typer.Typer(help="Webhooks: where the gateway POSTs an agency's inbox.", no_args_is_help=True)


def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise UserError(f"{what} {text!r} is not a UUID") from None


@app.command("subscribe")
def subscribe(
    agency: Annotated[str, typer.Argument(metavar="CODE", help="The agency whose inbox it is.")],
    *,
    callback: Annotated[
        str, typer.Option("--callback", metavar="URL", help="Where to POST (https).")
    ],
    auth: Annotated[
        str | None,
        typer.Option("--auth", metavar="VALUE", help="The Authorization header to send."),
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="EVENT", help="Only this event type (repeatable)."),
    ] = None,
    channels: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            metavar="KANAAL",
            help="Only this Notificaties channel (repeatable); the bus's own events: ketenbus.",
        ),
    ] = None,
    delivery_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="cloudevents (the event, structured mode) or notificaties (a ZGW message).",
        ),
    ] = "cloudevents",
) -> None:
    """Subscribe CALLBACK to agency CODE's inbox after the handshake; print its id and secret."""
    import httpx

    from services.gateway import subscriptions
    from services.runtime.config.registry import load_registry

    registry = load_registry(Settings().registry)

    async def made(engine: AsyncEngine) -> subscriptions.Subscription:
        async with httpx.AsyncClient(timeout=10) as client:
            return await subscriptions.subscribe(
                engine,
                registry,
                client,
                agency=agency,
                callback_url=callback,
                authorization=auth,
                event_types=types or [],
                channels=channels or [],
                delivery_format=delivery_format,
            )

    found = read_store(made)
    typer.echo(f"subscription {found.subscription_id}")
    typer.echo(f"signing secret {found.signing_secret}  (shown once)")


@app.command("list")
def list_subscriptions(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Every subscription: id, agency, status, types, callback."""
    from services.gateway import subscriptions

    found = read_store(subscriptions.listing)
    if as_json:
        typer.echo(json.dumps([s.public() for s in found], indent=2))
        return
    rows = [
        (
            str(s.subscription_id),
            s.agency,
            s.status,
            ",".join(s.event_types) or "(all)",
            s.callback_url,
        )
        for s in found
    ]
    typer.echo(
        "\n".join(table(("ID", "AGENCY", "STATUS", "TYPES", "CALLBACK"), rows))
        if rows
        else "no webhook subscriptions"
    )


@app.command("deliveries")
def deliveries(
    subscription: Annotated[
        str | None, typer.Option("--subscription", metavar="ID", help="Of this subscription.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", metavar="STATUS", help="pending, delivered, dead or dropped."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, metavar="N")] = 50,
) -> None:
    """The most recent deliveries: id, status, attempts, last answer, case, event type."""
    from services.webhook_deliveries import recent

    chosen = _uuid(subscription, "subscription") if subscription else None
    found = read_store(lambda engine: recent(engine, chosen, status, limit))
    rows = [
        (
            str(d.id),
            d.status,
            str(d.attempts),
            str(d.last_status or "-") if not d.last_error else d.last_error[:40],
            format_time(d.created_at),
            str(d.case_id),
            d.event_type,
        )
        for d in found
    ]
    typer.echo(
        "\n".join(table(("ID", "STATUS", "ATTEMPTS", "LAST", "SINCE", "CASE", "TYPE"), rows))
        if rows
        else "no deliveries"
    )


@app.command("replay")
def replay(
    delivery: Annotated[
        int | None, typer.Option("--delivery", metavar="ID", help="One delivery.")
    ] = None,
    subscription: Annotated[
        str | None, typer.Option("--subscription", metavar="ID", help="A subscription's.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="Those made at or after TIME.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Those made before TIME.")
    ] = None,
) -> None:
    """Deliver again what was delivered or given up (to active subscriptions only)."""
    from services.webhook_deliveries import parse_moment, replayed_message
    from services.webhook_deliveries import replay as again

    chosen = _uuid(subscription, "subscription") if subscription else None
    since_at, until_at = parse_moment(since, "--since"), parse_moment(until, "--until")
    if delivery is None and chosen is None and since_at is None and until_at is None:
        raise UserError("say what to replay: --delivery, --subscription, --since or --until")
    count = read_store(
        lambda engine: again(
            engine, delivery_id=delivery, subscription_id=chosen, since=since_at, until=until_at
        )
    )
    typer.echo(replayed_message(count))


@app.command("end")
def end(subscription: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """End subscription ID; what it still had to deliver is dropped."""
    from services.gateway import subscriptions

    chosen = _uuid(subscription, "subscription")

    async def ended(engine: AsyncEngine) -> bool:
        async with write_transaction(engine) as connection:
            return await subscriptions.end(connection, chosen, "ended by an operator")

    if not read_store(ended):
        raise UserError(f"no active subscription {subscription}")
    typer.echo(f"ended {subscription}")
