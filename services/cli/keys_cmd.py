"""`ketenbus keys`: create an agency's key pair for signing events and opening sealed data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from services.runtime.errors import UserError

_CODE = re.compile(r"^[a-z][a-z0-9]{1,31}$")

app = typer.Typer(
    help="Agency key pairs: one Ed25519 key pair signs an agency's events and opens the "
    "personal data sealed for it.",
    no_args_is_help=True,
)


@app.command()
def new(
    code: Annotated[
        str, typer.Argument(metavar="CODE", help="The agency's code in the registry (uwv).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Where to write CODE.key.",
            show_default="KETENBUS_DATA_DIR/keys",
        ),
    ] = None,
) -> None:
    """Write a new private key to DIR/CODE.key (mode 0600) and print its registry line."""
    from contracts.agency_client import AgencyKeys
    from services.runtime.settings import Settings

    if not _CODE.match(code):
        raise UserError(f"{code!r} is not an agency code (a-z and digits, 2-32 long)")
    directory = out if out is not None else Settings().data_dir / "keys"
    path = directory / f"{code}.key"
    if path.exists() or path.is_symlink():
        raise UserError(f"{path} already exists; not overwriting a private key")
    keys = AgencyKeys.generate(code)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys.save(path)
    except FileExistsError:
        raise UserError(f"{path} already exists; not overwriting a private key") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    typer.echo(f"wrote the private key of {code} to {path} (mode 0600: keep it secret)")
    typer.echo(f"public key: {keys.public_key}")
    typer.echo(f"key id:     {keys.key_id}")
    typer.echo(f"registry line for agency {code} (in deploy/agencies.yaml or KETENBUS_REGISTRY):")
    typer.echo(f"signing_key: {keys.public_key}")
