"""An agency's webhooks: where the gateway POSTs what arrives in its inbox.

A subscription is made only after its receiver passed the webhook guideline's
abuse-protection handshake: an `OPTIONS` to the callback with
`WebHook-Request-Origin`, answered 2xx with a `WebHook-Allowed-Origin` of that
origin or `*`. So nobody can make the bus POST at a URL that did not agree to
it. The callback must be `https`, except on a loopback address (tests, a
receiver beside the bus).

Which events: everything the agency's inbox holds (its registry
subscriptions, what is addressed to it, and the bus's own notices, alerts and
expiries), or the types named, and of those the Notificaties channels named
(a `zgw-notificatie` is on its message's `kanaal`, every other event on
`ketenbus`); the purpose and legal basis are the registry's for those types.

In which form: `cloudevents` (the inbox copy in structured mode) or
`notificaties` (a `zgw-notificatie` as the Notificaties API 1.0 message it was
made from, for a receiver built for a Notificaties component). Only a
`zgw-notificatie` has a Notificaties form, so such a subscription delivers that
type alone.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.events import EVENT_CLASSES, ZgwNotificatie
from contracts.registry import AgencyRegistry
from services.runtime.errors import UserError
from services.runtime.store.engine import write_transaction
from services.runtime.store.tables import (
    DELIVERY_FORMATS,
    webhook_deliveries,
    webhook_subscriptions,
)

ORIGIN = "ketenbus"
"""The `WebHook-Request-Origin` the gateway sends: the bus, as a receiver allows it."""

BUS_CHANNEL = "ketenbus"
"""The Notificaties channel of every event but a `zgw-notificatie` (on its message's)."""

CLOUDEVENTS, NOTIFICATIES = DELIVERY_FORMATS


class SubscriptionRefused(UserError):
    """A subscription that cannot be made: the reason, for the agency that asked."""


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: UUID
    agency: str
    callback_url: str
    authorization: str | None
    signing_secret: str
    event_types: list[str]
    purpose: str | None
    legal_basis: str | None
    status: str
    created_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    delivery_format: str = CLOUDEVENTS
    channels: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """What an API answer shows: everything but the credentials."""
        return {
            "id": str(self.subscription_id),
            "agency": self.agency,
            "callbackUrl": self.callback_url,
            "types": self.event_types,
            "channels": self.channels,
            "format": self.delivery_format,
            "purpose": self.purpose,
            "legalBasis": self.legal_basis,
            "status": self.status,
            "createdAt": self.created_at.isoformat(),
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "endReason": self.end_reason,
        }


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubscriptionRefused(f"callback {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise SubscriptionRefused(
            f"callback {url!r} must be https (plain http only to a loopback address)"
        )


async def handshake(client: httpx.AsyncClient, url: str) -> None:
    """The abuse-protection handshake; SubscriptionRefused says what the receiver did."""
    try:
        answer = await client.options(url, headers={"WebHook-Request-Origin": ORIGIN})
    except httpx.HTTPError as exc:
        raise SubscriptionRefused(
            f"callback {url} did not answer the handshake: {type(exc).__name__}"
        ) from None
    allowed = answer.headers.get("WebHook-Allowed-Origin", "")
    if not answer.is_success or allowed.strip() not in (ORIGIN, "*"):
        raise SubscriptionRefused(
            f"callback {url} did not allow origin {ORIGIN!r} in the handshake (answered "
            f"{answer.status_code}, WebHook-Allowed-Origin {allowed or 'absent'!r})"
        )


def _grants(
    registry: AgencyRegistry, agency: str, types: Sequence[str], delivery_format: str
) -> tuple[list[str], str, str]:
    """The types delivered ([]: all the inbox holds), and the registry's purpose and basis."""
    found = registry.agency(agency)
    if found is None:
        raise SubscriptionRefused(f"agency {agency!r} is not in the registry")
    granted = {event: sub for sub in found.subscriptions for event in sub.events}
    # Beside its registry subscriptions an inbox holds what is addressed to the agency
    # (a handoff to it, an answer to its request) and the bus's own notices and alerts.
    known = set(EVENT_CLASSES)
    unknown = [t for t in types if t not in known]
    if unknown:
        raise SubscriptionRefused(
            f"agency {agency} receives no {', '.join(unknown)}: no such event type "
            f"(the types: {', '.join(sorted(known))})"
        )
    if delivery_format == NOTIFICATIES:
        if any(t != ZgwNotificatie.name for t in types):
            raise SubscriptionRefused(
                f"format {NOTIFICATIES} delivers {ZgwNotificatie.name} alone (no other event "
                f"has a Notificaties form); ask for types [{ZgwNotificatie.name}] or none"
            )
        types = [ZgwNotificatie.name]
    elif delivery_format != CLOUDEVENTS:
        raise SubscriptionRefused(
            f"format {delivery_format!r} is none of {', '.join(DELIVERY_FORMATS)}"
        )
    subs = [granted[t] for t in (types or granted) if t in granted]
    purposes = sorted({sub.purpose for sub in subs})
    bases = sorted({sub.legal_basis for sub in subs})
    return list(types), "; ".join(purposes)[:200], "; ".join(bases)[:200]


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def subscribe(
    engine: AsyncEngine,
    registry: AgencyRegistry,
    client: httpx.AsyncClient,
    *,
    agency: str,
    callback_url: str,
    authorization: str | None = None,
    event_types: Sequence[str] = (),
    channels: Sequence[str] = (),
    delivery_format: str = CLOUDEVENTS,
) -> Subscription:
    """Check, shake hands, then keep the subscription; it delivers from the next inbox record."""
    check_callback(callback_url)
    types, purpose, basis = _grants(registry, agency, event_types, delivery_format)
    await handshake(client, callback_url)
    made = Subscription(
        subscription_id=uuid.uuid4(),
        agency=agency,
        callback_url=callback_url,
        authorization=authorization,
        signing_secret=new_secret(),
        event_types=types,
        purpose=purpose,
        legal_basis=basis,
        status="active",
        created_at=datetime.now(UTC),
        ended_at=None,
        end_reason=None,
        delivery_format=delivery_format,
        channels=sorted(set(channels)),
    )
    async with write_transaction(engine) as connection:
        await connection.execute(
            insert(webhook_subscriptions).values(
                subscription_id=made.subscription_id,
                agency=made.agency,
                callback_url=made.callback_url,
                authorization=made.authorization,
                signing_secret=made.signing_secret,
                event_types=made.event_types,
                purpose=made.purpose,
                legal_basis=made.legal_basis,
                status=made.status,
                created_at=made.created_at,
                delivery_format=made.delivery_format,
                channels=made.channels,
            )
        )
    return made


async def listing(engine: AsyncEngine, agency: str | None = None) -> list[Subscription]:
    query = select(webhook_subscriptions).order_by(webhook_subscriptions.c.created_at)
    if agency is not None:
        query = query.where(webhook_subscriptions.c.agency == agency)
    async with engine.connect() as connection:
        return [Subscription(**row._mapping) for row in await connection.execute(query)]


async def find(engine: AsyncEngine, subscription_id: UUID) -> Subscription | None:
    query = select(webhook_subscriptions).where(
        webhook_subscriptions.c.subscription_id == subscription_id
    )
    async with engine.connect() as connection:
        row = (await connection.execute(query)).first()
    return Subscription(**row._mapping) if row is not None else None


async def end(connection: AsyncConnection, subscription_id: UUID, reason: str) -> bool:
    """End an active subscription and drop what it still had to deliver; False if it was not."""
    now = datetime.now(UTC)
    ended = await connection.execute(
        update(webhook_subscriptions)
        .where(
            webhook_subscriptions.c.subscription_id == subscription_id,
            webhook_subscriptions.c.status == "active",
        )
        .values(status="ended", ended_at=now, end_reason=reason[:300])
    )
    await connection.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.subscription_id == subscription_id,
            webhook_deliveries.c.status == "pending",
        )
        .values(status="dropped", finished_at=now, next_attempt_at=None)
    )
    return bool(ended.rowcount)
