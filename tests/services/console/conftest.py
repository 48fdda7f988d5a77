"""Shared console fixtures: a users file, and the console app on the embedded broker.

    async def test_something(console: ConsoleHarness) -> None:
        operator = await console.operator()            # logged in with a session cookie
        member = await console.member()                # the team member, logged in
        anonymous = console.client()                   # no credentials
        scripted = console.client(token=True)          # Authorization: Bearer <the token>
        response = await operator.get("/api/whoami")
        console.state                                  # the running Console (state.py)

The users (`CREDENTIALS`): `operator` (role operator), `inning` (role team,
team `belastingdienst/inning-teamleiding` of deploy/agencies.yaml) and the token
`inning-cli` of that same team. The app runs its lifespan (the producer on the
session's embedded broker, the SQLite store migrated under tmp_path); clients
are closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr
from starlette.applications import Starlette

from services.console.app import create_console
from services.console.state import Console
from services.console.users import hash_password, token_sha256
from services.runtime.config.settings import Settings
from services.runtime.store.engine import migrate

BASE_URL = "http://127.0.0.1"
TEAM = "belastingdienst/inning-teamleiding"


@dataclass(frozen=True)
class Credentials:
    operator: tuple[str, str] = ("operator", "operator-password-1")
    member: tuple[str, str] = ("inning", "inning-password-1")
    team: str = TEAM
    token_name: str = "inning-cli"
    token: str = "test-token-of-inning-not-secret"


CREDENTIALS = Credentials()


def write_users_file(path: Path, credentials: Credentials = CREDENTIALS) -> Path:
    """A users file with the operator, the team member and the team's token."""
    document = {
        "users": [
            {
                "name": credentials.operator[0],
                "role": "operator",
                "password": hash_password(credentials.operator[1]),
            },
            {
                "name": credentials.member[0],
                "role": "team",
                "team": credentials.team,
                "password": hash_password(credentials.member[1]),
            },
        ],
        "tokens": [
            {
                "name": credentials.token_name,
                "role": "team",
                "team": credentials.team,
                "sha256": token_sha256(credentials.token),
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared users file (argon2 hashing is slow: made once per session)."""
    return write_users_file(tmp_path_factory.mktemp("console") / "users.yaml")


@dataclass
class ConsoleHarness:
    """The running console app and clients for each kind of caller."""

    app: Starlette
    credentials: Credentials = CREDENTIALS
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def state(self) -> Console:
        """The running Console, as `console_of(request)` gives it to a route."""
        console: Console = self.app.state.console
        return console

    def client(self, *, token: bool = False) -> httpx.AsyncClient:
        """A client without a session; with `token`, sending the team's Bearer token."""
        headers = {"Authorization": f"Bearer {self.credentials.token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL, headers=headers
        )
        self._clients.append(client)
        return client

    async def login(self, name: str, password: str) -> httpx.AsyncClient:
        """A client logged in as `name` (asserts the login succeeded)."""
        client = self.client()
        response = await client.post("/login", data={"username": name, "password": password})
        assert 303 == response.status_code, response.text
        return client

    async def operator(self) -> httpx.AsyncClient:
        return await self.login(*self.credentials.operator)

    async def member(self) -> httpx.AsyncClient:
        return await self.login(*self.credentials.member)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


def console_settings(settings: Settings, tmp_path: Path, users: Path | None) -> Settings:
    """The session's settings with a private data directory and `users` as the users file."""
    # Built anew, not model_copy'd: a copy would keep the cached `database` URL.
    return Settings(
        **{
            **settings.model_dump(),
            "data_dir": tmp_path,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'ketenbus.db'}",
            "console_users": users,
            "console_secret": SecretStr("test-session-secret"),
        }
    )


@pytest.fixture
async def console(
    kafka: str, settings: Settings, users_file: Path, tmp_path: Path
) -> AsyncIterator[ConsoleHarness]:
    """The console on the embedded broker, lifespan running, with the shared users file."""
    app = create_console(
        console_settings(settings, tmp_path, users_file), bootstrap=kafka, health_targets={}
    )
    async with app.router.lifespan_context(app):
        harness = ConsoleHarness(app)
        await migrate(harness.state.engine)
        try:
            yield harness
        finally:
            await harness.close()
