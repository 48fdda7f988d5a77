"""`ketenbus keys`: an agency's key pair (signing, sealed data); a console user's entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from services.runtime.errors import UserError

_CODE = re.compile(r"^[a-z][a-z0-9]{1,31}$")
_MIN_PASSWORD = 12

app = typer.Typer(
    help="Agency key pairs: one Ed25519 key pair signs an agency's events and opens the "
    "personal data sealed for it. Console users: `keys user` makes a users file entry.",
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
    from services.runtime.config.settings import Settings

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


@app.command()
def user(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The login name (or the token's name).")
    ],
    role: Annotated[
        str, typer.Option("--role", metavar="operator|team", help="What the user may see and do.")
    ],
    team: Annotated[
        str | None,
        typer.Option(
            "--team",
            metavar="AGENCY/TEAM",
            help="With --role team: the escalation team in the registry.",
        ),
    ] = None,
    token: Annotated[
        bool,
        typer.Option("--token", help="Make a random token for scripts instead of a password."),
    ] = False,
) -> None:
    """Print a console users file entry (KETENBUS_CONSOLE_USERS): a password, asked for
    twice and stored as its argon2 hash, or with --token a new token (shown once, on
    stderr) stored as its sha256."""
    import yaml

    from services.console.users import (
        NAME_PATTERN,
        hash_password,
        new_token,
        team_ref,
        token_sha256,
    )
    from services.runtime.config.registry import load_registry
    from services.runtime.config.settings import Settings

    if not re.match(NAME_PATTERN, name):
        raise UserError(f"{name!r} is not a user name (letters, digits and ._@/-, up to 80)")
    if role not in ("operator", "team"):
        raise UserError(f"--role must be operator or team, not {role!r}")
    if (role == "team") != (team is not None):
        raise UserError("--team AGENCY/TEAM goes with --role team, and only with it")
    entry: dict[str, str] = {"name": name, "role": role}
    if team is not None:
        try:
            team_ref(team, load_registry(Settings().registry), "--team")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        entry["team"] = team
    if token:
        secret = new_token()
        entry["sha256"] = token_sha256(secret)
        typer.echo(f"token (shown once; keep it secret): {secret}", err=True)
        section = "tokens"
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        if len(password) < _MIN_PASSWORD:
            raise UserError(f"a password needs at least {_MIN_PASSWORD} characters")
        entry["password"] = hash_password(password)
        section = "users"
    typer.echo(f"add this entry under `{section}:` in the console users file:", err=True)
    typer.echo(yaml.safe_dump([entry], sort_keys=False), nl=False)
