"""`ketenbus bench`: benchmarks, each against a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import json

import typer

bench_app = typer.Typer(
    help="Benchmarks with their baselines, measured in one run.", no_args_is_help=True
)


@bench_app.command("router")
def router(
    events: int = typer.Option(20_000, "--events", min=100, help="Events per measured phase."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """The router against a raw aiokafka relay (outbox → one topic, no processing).

    The router does all it does in production: verifies each signature, checks the
    case's custody in a SQLite store, minimises each receiver's copy and appends the
    audit chain; half the events open a case, half hand it on with sealed personal data."""
    from bench.router import as_dict, bench_router

    result = asyncio.run(bench_router(events))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    print(f"events              {result.events}")
    print(f"raw relay           {result.raw_events_per_s:,.0f} events/s")
    print(f"router              {result.router_events_per_s:,.0f} events/s")
    print(f"router messages out {result.router_messages_out} (case log, inboxes, audit)")
    print(f"ratio router/raw    {result.ratio:.3f}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
