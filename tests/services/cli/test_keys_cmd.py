"""`ketenbus keys new`: a private key only its owner reads, never overwritten, never shown;
`ketenbus keys user`: a console users file entry the console accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.cli import keys_cmd
from services.console.users import load_users, token_sha256
from services.runtime.errors import UserError

TEAM = "belastingdienst/inning-teamleiding"


def keys_new(*args: str) -> Result:
    cli = typer.Typer()
    cli.add_typer(keys_cmd.app, name="keys")
    return CliRunner().invoke(cli, ["keys", "new", *args])


def test_keys_new_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    result = keys_new("uwv", "--out", str(tmp_path))

    assert 0 == result.exit_code, result.output
    path = tmp_path / "uwv.key"
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    keys = AgencyKeys.load(path, "uwv")
    lines = result.stdout.splitlines()
    assert f"signing_key: {keys.public_key}" in lines
    assert f"key id:     {keys.key_id}" in lines


def test_keys_new_writes_under_the_data_dir_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETENBUS_DATA_DIR", str(tmp_path / "state"))

    result = keys_new("gm0363")

    assert 0 == result.exit_code, result.output
    assert (tmp_path / "state" / "keys" / "gm0363.key").is_file()


def test_keys_new_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    assert 0 == keys_new("uwv", "--out", str(tmp_path)).exit_code
    before = (tmp_path / "uwv.key").read_bytes()

    result = keys_new("uwv", "--out", str(tmp_path))

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert "already exists" in str(result.exception)
    assert before == (tmp_path / "uwv.key").read_bytes()


def test_keys_new_refuses_a_code_that_is_not_an_agency_code(tmp_path: Path) -> None:
    result = keys_new("../uwv", "--out", str(tmp_path / "keys"))

    assert isinstance(result.exception, UserError)
    assert "is not an agency code" in str(result.exception)
    assert [] == list(tmp_path.iterdir())


def test_keys_new_never_prints_the_private_key(tmp_path: Path) -> None:
    result = keys_new("uwv", "--out", str(tmp_path))

    private = (tmp_path / "uwv.key").read_text(encoding="ascii").strip()
    assert 0 == result.exit_code, result.output
    assert 44 == len(private)
    assert private not in result.output
    assert private not in result.stderr
    assert private[:16] not in result.output


def keys_user(*args: str, password: str | None = None) -> Result:
    cli = typer.Typer()
    cli.add_typer(keys_cmd.app, name="keys")
    given = f"{password}\n{password}\n" if password is not None else None
    return CliRunner().invoke(cli, ["keys", "user", *args], input=given)


def _users_file(tmp_path: Path, section: str, stdout: str) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(f"{section}:\n{stdout}", encoding="utf-8")
    return path


def test_keys_user_prints_an_entry_whose_password_logs_in(
    tmp_path: Path, registry: AgencyRegistry
) -> None:
    result = keys_user("inning", "--role", "team", "--team", TEAM, password="long-password-1")

    assert 0 == result.exit_code, result.output
    assert "long-password-1" not in result.stdout
    users = load_users(_users_file(tmp_path, "users", result.stdout), registry)
    principal = users.login("inning", "long-password-1")
    assert principal is not None
    assert TEAM == principal.team_label


def test_keys_user_token_is_shown_once_on_stderr_and_stored_as_its_sha256(
    tmp_path: Path, registry: AgencyRegistry
) -> None:
    result = keys_user("cli", "--role", "operator", "--token")

    assert 0 == result.exit_code, result.output
    token = result.stderr.split("keep it secret): ")[1].split()[0]
    assert token not in result.stdout
    assert token_sha256(token) in result.stdout
    users = load_users(_users_file(tmp_path, "tokens", result.stdout), registry)
    assert "operator" == getattr(users.by_token(token), "role", None)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--role", "team", "--team", "uwv/nope"], "uwv has no escalation team 'nope'"),
        (["--role", "team"], "--team AGENCY/TEAM goes with --role team"),
        (["--role", "operator", "--team", TEAM], "--team AGENCY/TEAM goes with --role team"),
        (["--role", "admin"], "--role must be operator or team"),
    ],
)
def test_keys_user_refuses_a_role_or_team_the_console_would_refuse(
    args: list[str], reason: str
) -> None:
    result = keys_user("someone", *args, "--token")

    assert isinstance(result.exception, UserError)
    assert reason in str(result.exception)


def test_keys_user_refuses_a_short_password() -> None:
    result = keys_user("operator", "--role", "operator", password="short")

    assert isinstance(result.exception, UserError)
    assert "at least 12 characters" in str(result.exception)
