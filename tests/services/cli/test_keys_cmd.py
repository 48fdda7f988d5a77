"""`ketenbus keys new`: a private key only its owner reads, never overwritten, never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from contracts.agency_client import AgencyKeys
from services.cli import keys_cmd
from services.runtime.errors import UserError


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
