"""The demo's console logins: an operator, and a user and a token per escalation team.

Made once per data directory by `ketenbus up --demo`, with random passwords and
tokens: `<data dir>/console-users.yaml` holds only their hashes (the console's
users file), `<data dir>/console-credentials.txt` (mode 0600) the plain ones,
for the person running the demo. Kept for the next run.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from contracts.registry import AgencyRegistry
from services.console.users import hash_password, new_token, token_sha256

USERS_FILE = "console-users.yaml"
CREDENTIALS_FILE = "console-credentials.txt"

_HEADER = """\
# Ketenbus demo console logins, made by `ketenbus up --demo`. DEMO ONLY: keep this file
# private (mode 0600). Log in at the console's /login with a user name and password;
# a team's token is for scripts and `ketenbus alerts`:
#   KETENBUS_CONSOLE_TOKEN=<token> ketenbus alerts --team <agency/team>
# kind      name                                            secret
"""


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def demo_console_users(data_dir: Path, registry: AgencyRegistry) -> Path:
    """The demo's users file, written with its credentials file if it is not there yet."""
    path = data_dir / USERS_FILE
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    users: list[dict[str, str]] = []
    tokens: list[dict[str, str]] = []
    lines: list[str] = []

    def add_user(name: str, role: str, team: str | None) -> None:
        password = secrets.token_urlsafe(12)
        users.append(_entry(name, role, team, password=hash_password(password)))
        lines.append(f"password  {name:<46}  {password}")

    add_user("operator", "operator", None)
    for agency in registry.agencies:
        for team in agency.escalation_teams:
            label = f"{agency.code}/{team.code}"
            add_user(label, "team", label)
            token = new_token()
            tokens.append(_entry(f"{label}-cli", "team", label, sha256=token_sha256(token)))
            lines.append(f"token     {label + '-cli':<46}  {token}")
    _write_private(credentials_path(data_dir), _HEADER + "\n".join(lines) + "\n")
    document = yaml.safe_dump({"users": users, "tokens": tokens}, sort_keys=False)
    header = f"# Made by `ketenbus up --demo`; the plain secrets are in {CREDENTIALS_FILE}.\n"
    _write_private(path, header + document)
    return path


def _entry(name: str, role: str, team: str | None, **secret: str) -> dict[str, str]:
    entry = {"name": name, "role": role}
    if team is not None:
        entry["team"] = team
    return {**entry, **secret}


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner reads, replacing what was there."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
