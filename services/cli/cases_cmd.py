"""`ketenbus case CASE_ID` and `ketenbus cases`: read the tracker's case store.

Both read the store at `KETENBUS_DATABASE_URL` (default: SQLite under the data
directory) and migrate it first, so a machine where the tracker never ran
answers "no cases yet" instead of failing on a missing table. `read_store` is
shared with the other verbs that read the store, so they all fail the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import typer

from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.text.terminal import format_time, table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.casefile.escalations import EscalationView
    from services.casefile.queries import CaseSummary, CaseView

T = TypeVar("T")


def read_store(query: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `query` against the migrated store; a store that cannot be reached is one line."""
    from alembic.util import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from services.runtime.store.engine import make_engine, migrate

    url = Settings().database

    async def run() -> T:
        engine = make_engine(url)
        try:
            await migrate(engine)
            return await query(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, CommandError, OSError) as exc:
        where = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise UserError(f"cannot read the case store at {where}: {reason}") from None


def render_case(view: CaseView) -> str:
    """The case's state, then its timeline, oldest first."""
    pending = view.pending_handoff
    lines = [
        f"case {view.case_id}",
        f"  category    {view.category}",
        f"  status      {view.status}",
        f"  holder      {view.holder}",
        "  pending     "
        + (
            f"handoff {pending.handoff_id} {pending.from_agency} -> {pending.to_agency}, "
            f"deadline {format_time(pending.deadline)}"
            if pending
            else "no handoff"
        ),
        f"  bounces     {view.bounce_count}",
        f"  opened      {format_time(view.opened_at)}",
        f"  last event  {format_time(view.last_event_at)}",
    ]
    if view.escalations:
        lines += ["", "escalations", *render_escalations(view.escalations)]
    rows = [
        (
            format_time(entry.time),
            entry.type,
            entry.agency or "(unknown)",
            "applied" if entry.applied else "refused",
            entry.summary if entry.applied else f"{entry.refusal} [{entry.summary}]",
        )
        for entry in view.timeline
    ]
    lines += ["", *table(("TIME", "EVENT", "AGENCY", "RESULT", "DETAIL"), rows)]
    return "\n".join(lines)


def render_escalations(escalations: Sequence[EscalationView]) -> list[str]:
    """One line per escalation of a case: trigger, level now and at most, team, status."""
    rows = [
        (
            str(escalation.escalation_id)[:8],
            escalation.trigger or "-",
            str(escalation.level),
            str(escalation.highest_level),
            escalation.team or "-",
            escalation.status,
            escalation.outcome or "-",
            format_time(escalation.raised_at),
        )
        for escalation in escalations
    ]
    headers = ("ID", "TRIGGER", "LEVEL", "HIGHEST", "TEAM", "STATUS", "OUTCOME", "RAISED")
    return ["  " + line for line in table(headers, rows)]


def render_cases(summaries: Sequence[CaseSummary]) -> str:
    """One line per case: who holds it, its status and any handoff in flight."""
    if not summaries:
        return "no cases yet"
    rows = [
        (
            str(case.case_id),
            case.category,
            case.holder,
            case.status,
            f"-> {case.pending_handoff.to_agency}" if case.pending_handoff else "-",
            str(case.bounce_count),
            format_time(case.last_event_at),
        )
        for case in summaries
    ]
    headers = ("CASE", "CATEGORY", "HOLDER", "STATUS", "HANDOFF", "BOUNCES", "LAST EVENT")
    return "\n".join(table(headers, rows))


def case(
    case_id: str = typer.Argument(..., metavar="CASE_ID", help="The case id (a UUID)."),
    as_json: bool = typer.Option(False, "--json", help="Print the case and timeline as JSON."),
) -> None:
    """Show one case: holder, status, pending handoff, and every event the tracker saw."""
    from services.casefile.queries import case_view, timeline

    try:
        key = UUID(case_id)
    except ValueError:
        raise UserError(f"{case_id!r} is not a case id (a case id is a UUID)") from None
    view = read_store(lambda engine: case_view(engine, key))
    if view is None:
        refused = len(read_store(lambda engine: timeline(engine, key)))
        if refused:
            raise UserError(f"unknown case {key}: never opened; {refused} event(s) for it refused")
        raise UserError(f"unknown case {key}: the tracker has recorded no event for it")
    typer.echo(view.model_dump_json(indent=2) if as_json else render_case(view))


def cases(
    as_json: bool = typer.Option(False, "--json", help="Print the cases as a JSON list."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many cases to show."),
) -> None:
    """List the most recently active cases with their holder and status."""
    from pydantic import TypeAdapter

    from services.casefile.queries import CaseSummary, recent_cases

    summaries = read_store(lambda engine: recent_cases(engine, limit))
    if as_json:
        typer.echo(TypeAdapter(list[CaseSummary]).dump_json(summaries, indent=2).decode())
    else:
        typer.echo(render_cases(summaries))


def register(app: typer.Typer) -> None:
    app.command()(case)
    app.command()(cases)
