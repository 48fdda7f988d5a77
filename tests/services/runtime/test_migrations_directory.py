"""The services find the Alembic scripts in a checkout and when installed as a package."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.store import engine


def test_in_a_checkout_the_scripts_beside_the_package_are_used() -> None:
    """The repository's own deploy/migrations, whatever the working directory."""
    assert (Path(engine.__file__).resolve().parents[3] / "deploy" / "migrations") == (
        engine.migrations_directory()
    )
    assert (engine.MIGRATIONS / "env.py").is_file()


def test_an_installed_package_finds_them_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the image: the package in site-packages, deploy/ copied to the working directory."""
    installed = tmp_path / "site-packages" / "services" / "runtime" / "store" / "engine.py"
    installed.parent.mkdir(parents=True)
    installed.touch()
    app = tmp_path / "app"
    (app / "deploy" / "migrations").mkdir(parents=True)
    monkeypatch.chdir(app)

    assert (app / "deploy" / "migrations") == engine.migrations_directory(installed)
