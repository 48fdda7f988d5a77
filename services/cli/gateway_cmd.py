"""`ketenbus gateway token new|list|revoke`: who may send events over the HTTP gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.cases_cmd import read_store
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.text.terminal import format_time, table

app = typer.Typer(help="The HTTP gateway: agencies' bearer tokens.", no_args_is_help=True)
token_app = typer.Typer(help="An agency's bearer tokens for the gateway.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("new")
def new_token(
    agency: Annotated[str, typer.Argument(metavar="CODE", help="The agency the token sends for.")],
    label: Annotated[
        str | None, typer.Option("--label", metavar="TEXT", help="What the token is for.")
    ] = None,
) -> None:
    """Make a token for agency CODE and print it, once: the store keeps only its sha256."""
    from services.gateway import tokens
    from services.runtime.config.registry import load_registry

    settings = Settings()
    if load_registry(settings.registry).agency(agency) is None:
        raise UserError(f"agency {agency!r} is not in the registry ({settings.registry})")
    token = read_store(lambda engine: tokens.issue(engine, agency, label))
    typer.echo(token)
    typer.echo(
        f"(for {agency}; send it as Authorization: Bearer ...; it is not shown again)", err=True
    )


@token_app.command("list")
def list_tokens() -> None:
    """Every token by the start of its sha256: agency, label, made, revoked."""
    from services.gateway import tokens

    found = read_store(tokens.listing)
    rows = [
        (
            info.sha256[:12],
            info.agency,
            info.label or "-",
            format_time(info.created_at),
            format_time(info.revoked_at) if info.revoked_at else "-",
        )
        for info in found
    ]
    if not rows:
        typer.echo("no gateway tokens")
        return
    typer.echo("\n".join(table(("SHA256", "AGENCY", "LABEL", "MADE", "REVOKED"), rows)))


@token_app.command("revoke")
def revoke_token(
    sha256: Annotated[
        str, typer.Argument(metavar="SHA256", help="The start of the token's sha256 (list).")
    ],
) -> None:
    """Revoke the one unrevoked token whose sha256 starts with SHA256."""
    from services.gateway import tokens

    if len(sha256) < 8:
        raise UserError("give at least 8 characters of the token's sha256")
    found = read_store(lambda engine: tokens.revoke(engine, sha256.lower()))
    if not found:
        raise UserError(f"no unrevoked gateway token's sha256 starts with {sha256}")
    if len(found) > 1:
        raise UserError(f"{len(found)} tokens' sha256 start with {sha256}; give more of it")
    typer.echo(f"revoked {found[0][:12]}")
