"""`ketenbus contracts`: export the event JSON Schemas, check them for breaking changes,
and write the AsyncAPI document of the services' channels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
import yaml

import contracts
from contracts.schemas import check_compatibility, export_schemas
from services.runtime.errors import UserError

SCHEMAS_DIR = Path(contracts.__file__).parent / "schemas"
"""The committed schemas, found beside the package rather than from the working directory."""

app = typer.Typer(
    help="The event contracts: export their JSON Schemas, check them for breaking changes, "
    "write the AsyncAPI document of the services' channels.",
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


@app.command()
def asyncapi(
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the document here instead of stdout."),
    ] = None,
    output_format: Annotated[
        Literal["json", "yaml"],
        typer.Option("--format", help="json or yaml."),
    ] = "json",
) -> None:
    """Write the AsyncAPI 3.0.0 document of every service's channels (no Kafka needed)."""
    from services.console.asyncapi import asyncapi_document
    from services.runtime.config.registry import load_registry
    from services.runtime.config.settings import Settings

    settings = Settings()
    bootstrap = settings.kafka_bootstrap or f"127.0.0.1:{settings.broker_port}"
    document = asyncapi_document(load_registry(settings.registry), bootstrap)
    if output_format == "yaml":
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc}") from None
    typer.echo(f"wrote {out}")
