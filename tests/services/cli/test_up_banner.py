"""`ketenbus up`'s banner says plainly that the embedded broker isolates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.supervisor import _print_banner
from services.runtime.config.settings import Settings

# What a local client can do on the embedded broker: the list, in the banner's words.
EXPOSED = (
    "no authentication and no ACLs",
    "every agency's inbox",
    "ketenbus.cases",
    "ketenbus.audit",
    "join any consumer group",
    "write into any agency's outbox",
    "development and tests only",
)


def _banner(capsys: pytest.CaptureFixture[str], tmp_path: Path, *, embedded: bool) -> str:
    settings = Settings(data_dir=tmp_path, console_users=None)
    _print_banner(settings, "127.0.0.1:9092", embedded, False)
    captured = capsys.readouterr()
    assert "" == captured.out
    # The lines wrap at the terminal's width; the phrases are checked across them.
    return " ".join(line.strip() for line in captured.err.splitlines())


def test_the_banner_warns_that_the_embedded_broker_has_no_authentication_or_acls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    banner = _banner(capsys, tmp_path, embedded=True)

    assert "WARNING" in banner
    for phrase in EXPOSED:
        assert phrase in banner, phrase


def test_the_banner_has_no_such_warning_on_an_external_broker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    banner = _banner(capsys, tmp_path, embedded=False)

    assert "Ketenbus is up." in banner
    assert "WARNING" not in banner
    assert "no ACLs" not in banner


def test_the_warning_lines_fit_an_80_column_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    _print_banner(settings, "127.0.0.1:9092", True, False)
    lines = capsys.readouterr().err.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("WARNING"))

    assert all(len(line) <= 80 for line in lines[start : start + 5])
