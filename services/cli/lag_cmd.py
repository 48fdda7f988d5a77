"""`ketenbus lag [--json]`: how far the bus's consumer groups are behind.

For the router, tracker and escalation groups: the lag on every partition of
the topics each reads (log end minus committed offset). Reads offsets only;
joins no group and commits nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from services.runtime.kafka.lag import GroupLag


def render_lag(lags: Sequence[GroupLag]) -> str:
    """One line per group with its total lag; under it, each partition that lags."""
    lines: list[str] = []
    for group in lags:
        lines.append(f"{group.group}: lag {group.lag}")
        lines += [
            f"  {p.topic}/{p.partition}: committed "
            f"{'-' if p.committed is None else p.committed}, end {p.end}, lag {p.lag}"
            for p in group.partitions
            if p.lag > 0
        ]
    return "\n".join(lines)


def lag_document(lags: Sequence[GroupLag]) -> dict[str, Any]:
    """{group: {"lag": n, "partitions": [{topic, partition, committed, end, lag}]}}."""
    return {
        group.group: {
            "lag": group.lag,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "end": p.end,
                    "lag": p.lag,
                }
                for p in group.partitions
            ],
        }
        for group in lags
    }


def lag(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the lag of every group and partition as JSON.")
    ] = False,
) -> None:
    """How far the router, tracker and escalation groups are behind, per partition."""
    from services.runtime.config.registry import load_registry
    from services.runtime.config.settings import Settings
    from services.runtime.kafka.lag import bus_groups, group_lags

    settings = Settings()
    groups = bus_groups(load_registry(settings.registry))
    lags = asyncio.run(group_lags(settings, groups))
    if as_json:
        typer.echo(json.dumps(lag_document(lags), indent=2))
    else:
        typer.echo(render_lag(lags))


def register(app: typer.Typer) -> None:
    app.command()(lag)
