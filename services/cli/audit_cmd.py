"""`ketenbus audit verify`: check the audit trail's hash chain in the store.

Reads the store at `KETENBUS_DATABASE_URL` like the other verbs that read it
(`services.cli.cases_cmd.read_store`). An intact chain is one line and exit 0;
a broken one names the first record that breaks it and exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from services.cli.cases_cmd import read_store
from services.runtime.errors import UserError

if TYPE_CHECKING:
    from services.audit import ChainReport

app = typer.Typer(
    help="The audit trail: who received which fields of which case, hash-chained.",
    no_args_is_help=True,
)


def render_break(report: ChainReport) -> str:
    """The first broken record, with its case and event when it still exists."""
    broken = report.broken
    assert broken is not None
    where = f"record {broken.seq}" if broken.chain else f"chain opening {broken.seq}"
    if broken.chain:
        where += f" of chain {broken.chain}"
    if broken.case_id is not None and broken.event_id is not None:
        where += f" (case {broken.case_id}, event {broken.event_id})"
    intact = f"{report.records} record(s) before it intact"
    return f"audit chain broken: {where}: {broken.reason} ({intact})"


@app.command()
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Check every record's hash and link to the one before, and each chain's head.

    Exits 1, naming the first broken record, if a record was changed, removed,
    reordered or added since it was written, or a chain removed whole.
    """
    from services.audit import verify as verify_chain

    report = read_store(verify_chain)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        if not report.intact:
            raise typer.Exit(code=1)
        return
    if not report.intact:
        raise UserError(render_break(report))
    typer.echo(
        f"audit chain intact: {report.records} records on {report.chains} chain(s), "
        f"openings head {report.head_hash}"
    )
