"""The console's users file: who may log in, with which role, and the scripts' tokens.

```yaml
users:
  - {name: operator, role: operator, password: "$argon2id$..."}
  - {name: inning, role: team, team: belastingdienst/inning-teamleiding, password: "$argon2id$..."}
tokens:
  - {name: inning-cli, role: team, team: belastingdienst/inning-teamleiding, sha256: "<hex>"}
```

Only hashes are stored: argon2 for passwords (slow on purpose), sha256 for
tokens (random and long, so a fast hash is enough). The file is checked against
the registry at start-up; every comparison takes the same time whether or not
the name or token exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.events import TeamRef
from contracts.registry import AgencyRegistry
from services.console.principal import Principal
from services.runtime.errors import UserError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@/-]{0,79}$"
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash to put in the users file."""
    return _HASHER.hash(password)


def token_sha256(token: str) -> str:
    """The hex sha256 of a token, as the users file holds it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    role: Literal["operator", "team"]
    team: str | None = None


class _UserEntry(_Entry):
    password: str = Field(min_length=1)


class _TokenEntry(_Entry):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    users: list[_UserEntry] = Field(default_factory=list)
    tokens: list[_TokenEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class _Account:
    principal: Principal
    password_hash: str


class Users:
    """The loaded users file; answers who a password, token or session belongs to."""

    def __init__(self, accounts: dict[str, _Account], tokens: list[tuple[str, Principal]]):
        self._accounts = accounts
        self._tokens = tokens

    @cached_property
    def _decoy(self) -> str:
        # Verified against when the name is unknown, so a refusal takes as long either way.
        return hash_password(new_token())

    def login(self, name: str, password: str) -> Principal | None:
        """The user if `password` is theirs (slow: call it off the event loop)."""
        account = self._accounts.get(name)
        try:
            _HASHER.verify(account.password_hash if account else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        return account.principal if account else None

    def known(self, name: str) -> bool:
        return name in self._accounts

    def by_token(self, token: str) -> Principal | None:
        """The token's holder; every entry is compared, in constant time each."""
        presented = token_sha256(token)
        found = None
        for digest, principal in self._tokens:
            if hmac.compare_digest(digest, presented):
                found = principal
        return found

    def stamp(self, name: str) -> str:
        """What a session carries besides the name: changing the password ends it."""
        return hashlib.sha256(self._accounts[name].password_hash.encode()).hexdigest()[:32]

    def by_session(self, name: object, stamp: object) -> Principal | None:
        if not isinstance(name, str) or not isinstance(stamp, str) or name not in self._accounts:
            return None
        if not hmac.compare_digest(self.stamp(name), stamp):
            return None
        return self._accounts[name].principal


def load_users(path: Path, registry: AgencyRegistry) -> Users:
    """The users file at `path`; UserError with a one-line reason if it is not valid."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"console users file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError:
        raise UserError(f"console users file {path}: not valid YAML") from None
    try:
        document = _Document.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the file"
        raise UserError(f"console users file {path}: {where}: {error['msg']}") from None
    try:
        return _users(document, registry)
    except ValueError as exc:
        raise UserError(f"console users file {path}: {exc}") from None


def _users(document: _Document, registry: AgencyRegistry) -> Users:
    accounts: dict[str, _Account] = {}
    for index, entry in enumerate(document.users):
        where = f"users.{index} ({entry.name})"
        if entry.name in accounts:
            raise ValueError(f"{where}: the name is used twice")
        try:
            _HASHER.check_needs_rehash(entry.password)
        except InvalidHashError:
            raise ValueError(
                f"{where}: password is not an argon2 hash (make one with `ketenbus keys user`)"
            ) from None
        accounts[entry.name] = _Account(_principal(entry, registry, where), entry.password)
    tokens: list[tuple[str, Principal]] = []
    names: set[str] = set()
    for index, token in enumerate(document.tokens):
        where = f"tokens.{index} ({token.name})"
        if token.name in names:
            raise ValueError(f"{where}: the name is used twice")
        names.add(token.name)
        tokens.append((token.sha256, _principal(token, registry, where)))
    return Users(accounts, tokens)


def _principal(entry: _Entry, registry: AgencyRegistry, where: str) -> Principal:
    if entry.role == "operator":
        if entry.team is not None:
            raise ValueError(f"{where}: an operator has no team")
        return Principal(entry.name, "operator", None)
    if entry.team is None:
        raise ValueError(f"{where}: role team needs team: AGENCY/TEAM")
    return Principal(entry.name, "team", team_ref(entry.team, registry, where))


def team_ref(label: str, registry: AgencyRegistry, where: str = "team") -> TeamRef:
    """`agency/team` as a TeamRef, if the registry has that escalation team."""
    agency_code, _, team_code = label.partition("/")
    agency = registry.agency(agency_code)
    if agency is None:
        raise ValueError(f"{where}: unknown agency {agency_code!r} in team {label!r}")
    if team_code not in {team.code for team in agency.escalation_teams}:
        raise ValueError(f"{where}: {agency_code} has no escalation team {team_code!r}")
    return TeamRef(agency=agency_code, team=team_code)
