"""`ketenbus signals`: the execution signals for policy makers, from the tracker's store.

What keeps causing escalations (by cause, agency pair, law or rule), how long
resolving them takes, what is still open and which cases are stuck longest.
The aggregate itself is `services.casefile.signals.PolicySignals`; this module
only reads it and prints it, as aligned text or as one JSON object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from services.cli.cases_cmd import read_store
from services.runtime.text.terminal import format_duration, format_time, parse_since, table

if TYPE_CHECKING:
    from services.casefile.signals import EscalationStates, PolicySignals, Resolution, Tally


def _section(title: str, lines: Sequence[str]) -> list[str]:
    return ["", title, *("  " + line for line in lines)]


def _tallies(header: str, tallies: Sequence[Tally], none: str) -> list[str]:
    rows = [(tally.key or none, str(tally.escalations)) for tally in tallies]
    return table((header, "ESCALATIONS"), rows)


def _resolution(resolution: Resolution) -> str:
    if not resolution.resolved:
        return "none resolved"
    return (
        f"{resolution.resolved} resolved, median {format_duration(resolution.median_seconds)}, "
        f"p90 {format_duration(resolution.p90_seconds)}"
    )


def _states(states: EscalationStates) -> str:
    parts = [
        f"{states.resolved} resolved",
        f"{states.withdrawn} withdrawn (answered before the expiry)",
        f"{states.open} open",
    ]
    if states.unresolved_on_closed_cases:
        parts.append(f"{states.unresolved_on_closed_cases} left unresolved on closed cases")
    return ", ".join(parts)


def render_signals(signals: PolicySignals) -> str:
    """The report: the counts first, then what is open, then the cases stuck longest."""
    scope = f"first raised since {signals.since.isoformat()}" if signals.since else "all time"
    lines = [f"policy signals, escalations {scope} (as of {format_time(signals.as_of)})"]
    if signals.escalations:
        lines += [
            f"  escalations         {signals.escalations}: {_states(signals.states)}",
            f"  time to resolution  {_resolution(signals.resolution)}",
        ]
        cause_rows = [
            (
                cause.cause or "(unknown)",
                str(cause.escalations),
                str(cause.resolution.resolved),
                format_duration(cause.resolution.median_seconds),
                format_duration(cause.resolution.p90_seconds),
            )
            for cause in signals.by_cause
        ]
        causes = table(("CAUSE", "ESCALATIONS", "RESOLVED", "MEDIAN", "P90"), cause_rows)
        lines += _section("by cause", causes)
        pairs = _tallies("AGENCY PAIR", signals.by_agency_pair, "(no pair)")
        lines += _section("by agency pair", pairs)
        lines += _section("by law or rule", _tallies("RULE", signals.by_rule, "(none cited)"))
    else:
        lines.append("  no escalations")
    levels = [(str(level.level), str(level.open)) for level in signals.open_by_level]
    lines += _section(
        "open escalations by level",
        table(("LEVEL", "OPEN"), levels) if levels else ["none open"],
    )
    stuck_rows = [
        (
            str(case.case_id),
            case.holder,
            format_duration(case.stuck_seconds),
            format_time(case.stuck_since),
            case.why,
        )
        for case in signals.stuck_longest
    ]
    stuck = table(("CASE", "HOLDER", "STUCK FOR", "SINCE", "WHY"), stuck_rows)
    lines += _section("stuck longest", stuck if stuck_rows else ["no case is stuck"])
    return "\n".join(lines)


def signals(
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="DATE",
        help="Count only escalations first raised on or after DATE (YYYY-MM-DD, UTC).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the signals as one JSON object."),
) -> None:
    """What keeps causing escalations, how long they take, and the cases stuck longest."""
    from services.casefile.signals import policy_signals

    day = parse_since(since)
    report = read_store(lambda engine: policy_signals(engine, day))
    typer.echo(report.model_dump_json(indent=2) if as_json else render_signals(report))


def register(app: typer.Typer) -> None:
    app.command()(signals)
