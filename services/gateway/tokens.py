"""An agency's bearer tokens for the gateway: made once, shown once, kept by their sha256.

A token is 32 random bytes (URL-safe base64, prefixed `kbg_` so a leaked one is
recognisable); with that much entropy a plain sha256 is a safe digest to keep,
and a lookup is one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import gateway_tokens

PREFIX = "kbg_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    sha256: str
    agency: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


async def issue(engine: AsyncEngine, agency: str, label: str | None = None) -> str:
    """A new token for `agency`; the caller shows it once, the store keeps its digest."""
    token = PREFIX + secrets.token_urlsafe(32)
    async with write_transaction(engine) as connection:
        await connection.execute(
            insert(gateway_tokens).values(
                token_sha256=digest(token),
                agency=agency,
                label=label,
                created_at=datetime.now(UTC),
            )
        )
    return token


async def agency_of(engine: AsyncEngine, token: str) -> str | None:
    """The agency a valid, unrevoked token speaks for; None for any other string."""
    if not token.startswith(PREFIX):
        return None
    query = select(gateway_tokens.c.agency).where(
        gateway_tokens.c.token_sha256 == digest(token), gateway_tokens.c.revoked_at.is_(None)
    )
    async with engine.connect() as connection:
        return (await connection.execute(query)).scalar_one_or_none()


async def listing(engine: AsyncEngine) -> list[TokenInfo]:
    t = gateway_tokens.c
    query = select(t.token_sha256, t.agency, t.label, t.created_at, t.revoked_at).order_by(
        t.agency, t.created_at
    )
    async with engine.connect() as connection:
        return [TokenInfo(*row) for row in await connection.execute(query)]


async def revoke(engine: AsyncEngine, sha256_prefix: str) -> list[str]:
    """Revoke the unrevoked tokens whose digest starts with `sha256_prefix`; their digests."""
    t = gateway_tokens.c
    async with write_transaction(engine) as connection:
        found = [
            row.token_sha256
            for row in await connection.execute(
                select(t.token_sha256).where(
                    t.token_sha256.startswith(sha256_prefix, autoescape=True),
                    t.revoked_at.is_(None),
                )
            )
        ]
        if len(found) == 1:
            await connection.execute(
                update(gateway_tokens)
                .where(t.token_sha256 == found[0])
                .values(revoked_at=datetime.now(UTC))
            )
    return found
