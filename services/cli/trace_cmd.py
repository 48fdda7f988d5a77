"""`ketenbus trace CASE_ID`: every delivery of a case's events, from the audit trail.

Which agency received which context fields of the case, when, for which
purpose and under which legal basis, oldest first. The audit records name
fields only, never their values, so nothing printed here is personal data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

import typer

from services.cli.cases_cmd import read_store
from services.runtime.errors import UserError
from services.runtime.text.terminal import format_time, table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from contracts.audit import AuditRecord

_SPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    # Purposes and legal bases are free text from the registry and may wrap;
    # each delivery stays one line.
    return _SPACE.sub(" ", text).strip()


def render_trace(records: Sequence[AuditRecord]) -> str:
    """One line per delivery, oldest first."""
    rows = [
        (
            format_time(record.delivered_at),
            record.receiver,
            record.event_type,
            ", ".join(record.fields) or "(no context)",
            _one_line(record.purpose),
            _one_line(record.legal_basis),
            str(record.seq),
        )
        for record in records
    ]
    headers = ("DELIVERED", "RECEIVER", "EVENT", "FIELDS", "PURPOSE", "LEGAL BASIS", "RECORD")
    return "\n".join(table(headers, rows))


async def _deliveries(engine: AsyncEngine, case_id: UUID) -> tuple[list[AuditRecord], bool]:
    """The case's audit records, and whether the tracker knows the case at all."""
    from pydantic import ValidationError
    from sqlalchemy import select

    from services.audit import trace as trace_case
    from services.runtime.store.tables import cases

    try:
        records = await trace_case(engine, case_id)
    except ValidationError:
        raise UserError(
            f"an audit record of case {case_id} is no longer valid; "
            "run `ketenbus audit verify` to find where the chain was changed"
        ) from None
    if records:
        return records, True
    async with engine.connect() as connection:
        known = await connection.scalar(select(cases.c.case_id).where(cases.c.case_id == case_id))
    return records, known is not None


def trace(
    case_id: str = typer.Argument(..., metavar="CASE_ID", help="The case id (a UUID)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the deliveries as one JSON array of audit records."
    ),
) -> None:
    """Which agency received which fields of a case, when, why and on which legal basis."""
    from pydantic import TypeAdapter

    from contracts.audit import AuditRecord

    try:
        key = UUID(case_id)
    except ValueError:
        raise UserError(f"{case_id!r} is not a case id (a case id is a UUID)") from None
    records, known = read_store(lambda engine: _deliveries(engine, key))
    if not known:
        raise UserError(f"unknown case {key}: the audit trail records no delivery of it")
    if as_json:
        typer.echo(TypeAdapter(list[AuditRecord]).dump_json(records, indent=2).decode())
    elif records:
        typer.echo(render_trace(records))
    else:
        typer.echo(f"case {key}: nothing of it delivered yet")


def register(app: typer.Typer) -> None:
    app.command()(trace)
