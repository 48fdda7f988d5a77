"""`ketenbus contracts`: export the event JSON Schemas and check them for breaking changes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import contracts
from contracts.schemas import check_compatibility, export_schemas

SCHEMAS_DIR = Path(contracts.__file__).parent / "schemas"
"""The committed schemas, found beside the package rather than from the working directory."""

app = typer.Typer(
    help="The event contracts: export their JSON Schemas, check them for breaking changes.",
    no_args_is_help=True,
)


@app.command()
def export(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Where to write one <event-type>.json per event type, plus envelope.json.",
            show_default="contracts/schemas",
        ),
    ] = SCHEMAS_DIR,
) -> None:
    """Write the JSON Schema of the envelope and of every event type."""
    try:
        written = export_schemas(directory)
    except OSError as exc:
        typer.echo(f"ketenbus: cannot write the schemas to {directory}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def check(
    schemas: Annotated[
        Path,
        typer.Option(
            "--schemas",
            metavar="DIR",
            help="The committed schemas to compare the current event models with.",
            show_default="contracts/schemas",
        ),
    ] = SCHEMAS_DIR,
) -> None:
    """Exit 1 if the event models would refuse what the committed schemas accept."""
    problems = check_compatibility(schemas)
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{schemas}: the event models are compatible with the committed schemas")
