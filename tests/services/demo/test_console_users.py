"""`ketenbus up --demo`'s console logins: made once, plain secrets readable by the owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from contracts.registry import AgencyRegistry
from services.console.users import load_users
from services.demo.console_users import credentials_path, demo_console_users


def _secrets(path: Path) -> dict[str, tuple[str, str]]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, name, secret = line.split()
            found[name] = (kind, secret)
    return found


def test_the_demo_users_log_in_with_the_credentials_file(
    tmp_path: Path, registry: AgencyRegistry
) -> None:
    users = load_users(demo_console_users(tmp_path, registry), registry)
    credentials = _secrets(credentials_path(tmp_path))

    assert 0o600 == stat.S_IMODE(credentials_path(tmp_path).stat().st_mode)
    operator = users.login("operator", credentials["operator"][1])
    assert operator is not None
    assert "operator" == operator.role
    teams = [f"{a.code}/{t.code}" for a in registry.agencies for t in a.escalation_teams]
    for team in teams:
        member = users.login(team, credentials[team][1])
        holder = users.by_token(credentials[f"{team}-cli"][1])
        assert member is not None
        assert holder is not None
        assert (team, team) == (member.team_label, holder.team_label)
    assert 1 + 2 * len(teams) == len(credentials)


def test_the_demo_users_are_made_once_and_kept(tmp_path: Path, registry: AgencyRegistry) -> None:
    path = demo_console_users(tmp_path, registry)
    before = (path.read_text(encoding="utf-8"), credentials_path(tmp_path).read_text("utf-8"))

    again = demo_console_users(tmp_path, registry)

    assert path == again
    assert before == (
        again.read_text(encoding="utf-8"),
        credentials_path(tmp_path).read_text("utf-8"),
    )
