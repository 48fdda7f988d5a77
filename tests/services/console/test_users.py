"""The console users file: checked against the registry at start-up, only hashes stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contracts.events import TeamRef
from contracts.registry import AgencyRegistry
from services.console.principal import Principal
from services.console.users import Users, hash_password, load_users, token_sha256
from services.runtime.errors import UserError
from tests.services.console.conftest import CREDENTIALS, TEAM

INNING = TeamRef(agency="belastingdienst", team="inning-teamleiding")


@pytest.fixture(scope="module")
def a_hash() -> str:
    return hash_password("some-password-1")


@pytest.fixture
def users(users_file: Path, registry: AgencyRegistry) -> Users:
    return load_users(users_file, registry)


def _load(tmp_path: Path, registry: AgencyRegistry, document: object) -> Users:
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_users(path, registry)


def test_the_right_password_logs_in_with_the_users_role_and_team(users: Users) -> None:
    assert Principal("operator", "operator", None) == users.login(*CREDENTIALS.operator)
    assert Principal("inning", "team", INNING) == users.login(*CREDENTIALS.member)


def test_a_wrong_password_or_unknown_name_is_refused(users: Users) -> None:
    assert None is users.login("operator", "not-the-password")
    assert None is users.login("operator", CREDENTIALS.member[1])
    assert None is users.login("nobody", CREDENTIALS.operator[1])
    assert None is users.login("operator", "")


def test_a_token_is_known_by_its_sha256_only(users: Users, users_file: Path) -> None:
    assert Principal("inning-cli", "team", INNING) == users.by_token(CREDENTIALS.token)
    assert None is users.by_token(CREDENTIALS.token + "x")
    assert None is users.by_token("")
    text = users_file.read_text(encoding="utf-8")
    assert token_sha256(CREDENTIALS.token) in text
    assert CREDENTIALS.token not in text
    assert CREDENTIALS.operator[1] not in text


def test_a_session_ends_when_the_users_password_hash_changes(
    users: Users, tmp_path: Path, registry: AgencyRegistry, a_hash: str
) -> None:
    stamp = users.stamp("operator")
    changed = _load(
        tmp_path,
        registry,
        {"users": [{"name": "operator", "role": "operator", "password": a_hash}]},
    )

    assert Principal("operator", "operator", None) == users.by_session("operator", stamp)
    assert None is changed.by_session("operator", stamp)
    assert None is users.by_session("nobody", stamp)
    assert None is users.by_session(None, None)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            {"role": "team", "team": "belastingdienst/nope"},
            "belastingdienst has no escalation team",
        ),
        ({"role": "team", "team": "nope/inning-teamleiding"}, "unknown agency 'nope'"),
        ({"role": "team"}, "role team needs team: AGENCY/TEAM"),
        ({"role": "operator", "team": TEAM}, "an operator has no team"),
        ({"role": "admin"}, "users.0.role: Input should be 'operator' or 'team'"),
        ({"role": "operator", "password": "plain-text"}, "password is not an argon2 hash"),
    ],
)
def test_an_invalid_user_entry_stops_start_up_with_a_one_line_reason(
    tmp_path: Path, registry: AgencyRegistry, a_hash: str, entry: dict[str, str], reason: str
) -> None:
    document = {"users": [{"name": "someone", "password": a_hash, **entry}]}

    with pytest.raises(UserError, match="console users file") as raised:
        _load(tmp_path, registry, document)

    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_unknown_team_of_a_token_stops_start_up(
    tmp_path: Path, registry: AgencyRegistry
) -> None:
    token = {"name": "cli", "role": "team", "team": "uwv/nope", "sha256": "0" * 64}

    with pytest.raises(UserError, match=r"tokens\.0 \(cli\): uwv has no escalation team 'nope'"):
        _load(tmp_path, registry, {"tokens": [token]})


def test_a_name_used_twice_stops_start_up(
    tmp_path: Path, registry: AgencyRegistry, a_hash: str
) -> None:
    user = {"name": "operator", "role": "operator", "password": a_hash}

    with pytest.raises(UserError, match="the name is used twice"):
        _load(tmp_path, registry, {"users": [user, user]})


def test_an_unreadable_or_malformed_file_is_a_user_error(
    tmp_path: Path, registry: AgencyRegistry
) -> None:
    with pytest.raises(UserError, match="cannot read it"):
        load_users(tmp_path / "missing.yaml", registry)
    with pytest.raises(UserError, match="not valid YAML"):
        _write_and_load(tmp_path, registry, "users: [")
    with pytest.raises(UserError, match="Extra inputs are not permitted"):
        _write_and_load(tmp_path, registry, "admins: []")


def _write_and_load(tmp_path: Path, registry: AgencyRegistry, text: str) -> Users:
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    return load_users(path, registry)
