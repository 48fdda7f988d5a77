"""`POST /api/v1/notificaties`: a ZGW system's Notificaties API 1.0 message onto the bus.

Open Zaak and other ZGW systems notify a Notificaties component (NRC) when a
resource changes; pointed at the gateway, they notify the bus. The caller is
an agency by its gateway token, and the registry must let it emit
`zgw-notificatie`. The message becomes one `zgw-notificatie` event
(`contracts.zgw`) that the gateway delivers to the inbox of every agency whose
registry subscription names that type, with an audit record per inbox copy in
the same transaction (fail-closed, as the router audits), and answers 201 with
the message, as a Notificaties component does, only after Kafka acknowledged
every copy (acks=all).

The message came unsigned over HTTP, so the router, which checks agencies'
signatures, is not its gate: the gateway is, by the token. The event's source
is the operator's `ketenbus-gateway`, and `data.afzender` names the agency.
The same message sent again is the same event id, answered 201 and not sent
twice. Kenmerken that ZGW uses for organisation numbers (an RSIN passes the
same eleven test as a BSN) are let through; any other text that holds a
citizen service number is refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts import topics
from contracts.audit import record_json, trusted_entry
from contracts.envelope import CONTENT_TYPE, MAX_EVENT_BYTES
from contracts.events import ZgwNotificatie
from contracts.registry import AgencyRegistry, Subscription
from contracts.screening import screen
from contracts.zgw import NotificatieMessage, notificatie_event
from services.audit import append, new_chain
from services.gateway.ingress import Ingress, agency_of_request
from services.gateway.intake import Taken, media_type
from services.gateway.problems import Problem
from services.runtime.kafka.clients import Outgoing, publish_all
from services.runtime.observability.logging import get_logger
from services.runtime.store.engine import write_transaction

log = get_logger("ketenbus.gateway")

NAME = ZgwNotificatie.name

ORGANISATION_KENMERKEN = frozenset(
    {"bronorganisatie", "verantwoordelijkeOrganisatie", "verantwoordelijke_organisatie"}
)
"""Kenmerken that hold an organisation's RSIN in the ZGW APIs, never a citizen's BSN."""


class Notificaties:
    """The endpoint, on the ingress's rate, repeat record and Kafka producer."""

    def __init__(
        self, registry: AgencyRegistry, engine: AsyncEngine, broker: KafkaBroker, ingress: Ingress
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.broker = broker
        self.ingress = ingress
        self.audit_chain = new_chain("gateway")

    async def endpoint(self, request: Request) -> Response:
        try:
            return await self._take(request)
        except Problem as problem:
            return problem.response()

    async def _take(self, request: Request) -> Response:
        agency = await agency_of_request(self.engine, request)
        await self.ingress.within_rate(agency, 1)
        found = self.registry.agency(agency)
        if found is None or NAME not in found.emits:
            raise Problem(
                403,
                "unauthorised-type",
                "Not a registered ZGW system",
                f"agency {agency} may not send Notificaties messages: the registry does not "
                f"list {NAME} among what it emits",
            )
        message = _message(request.headers.get("content-type"), await _body(request))
        event = notificatie_event(message, agency=agency, operator_oin=self.registry.operator.oin)
        value = event.to_json()
        _screened(json.loads(value))
        taken = Taken(event.id, event.subject, value, _digest_of(value))
        fresh, repeated = await self.ingress.repeats([taken])
        receivers = _receivers(self.registry)
        if fresh:
            await self._deliver(event, value, receivers)
            await self.ingress.record(agency, fresh)
        log.info(
            "zgw notificatie taken",
            agency=agency,
            case_id=str(event.subject),
            correlation_id=str(event.correlationid),
            event_id=str(event.id),
            kanaal=message.kanaal,
            receivers=len(receivers),
            repeated=bool(repeated),
        )
        return JSONResponse(message.api_form(), 201, headers={"Ketenbus-Event-Id": str(event.id)})

    async def _deliver(
        self, event: ZgwNotificatie, value: bytes, receivers: list[tuple[str, Subscription]]
    ) -> None:
        if not receivers:
            return
        key = str(event.subject).encode()
        chain = str(event.correlationid)
        now = datetime.now(UTC)
        copies = [
            Outgoing(topics.inbox(code), key, value, {"content-type": CONTENT_TYPE}, chain)
            for code, _ in receivers
        ]
        entries = [
            trusted_entry(
                case_id=event.subject,
                event_id=event.id,
                event_type=NAME,
                receiver=code,
                fields=[],
                purpose=grant.purpose,
                legal_basis=grant.legal_basis,
                delivered_at=now,
            )
            for code, grant in receivers
        ]
        async with write_transaction(self.engine) as connection:
            records = await append(connection, entries, chain=self.audit_chain)
            audits = [Outgoing(topics.AUDIT, key, record_json(r), {}, chain) for r in records]
            await publish_all(self.broker, [*copies, *audits])


def _receivers(registry: AgencyRegistry) -> list[tuple[str, Subscription]]:
    """Each agency whose registry subscription names zgw-notificatie, with that subscription."""
    found: list[tuple[str, Subscription]] = []
    for agency in registry.agencies:
        grant = next((s for s in agency.subscriptions if NAME in s.events), None)
        if grant is not None:
            found.append((agency.code, grant))
    return found


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            raise Problem(
                413,
                "event-too-large",
                "Message too large",
                f"a Notificaties message carries at most 64 KB ({MAX_EVENT_BYTES} bytes)",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _message(content_type: str | None, body: bytes) -> NotificatieMessage:
    media = media_type(content_type)
    if media != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"a Notificaties message is application/json, not {media or '(none)'}",
        )
    try:
        return NotificatieMessage.model_validate_json(body)
    except ValidationError as exc:
        invalid = [
            {
                "name": ".".join(str(part) for part in error["loc"]) or "(body)",
                "code": error["type"],
                "reason": error["msg"],
            }
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise Problem(
            400,
            "invalid-notificatie",
            "Invalid Notificaties message",
            "; ".join(f"{i['name']}: {i['reason']}" for i in invalid),
            invalidParams=invalid,
        ) from None


def _screened(document: dict[str, Any]) -> None:
    """400 for a BSN (or a NUL) in any text but the organisation numbers ZGW names."""
    data = document["data"]
    kenmerken = {
        name: text for name, text in data["kenmerken"].items() if name not in ORGANISATION_KENMERKEN
    }
    finding = screen({**document, "data": {**data, "kenmerken": kenmerken}})
    if finding is not None:
        field = _API_NAMES.get(finding.field, finding.field.removeprefix("data."))
        raise Problem(
            400,
            "invalid-notificatie",
            "Invalid Notificaties message",
            f"{field}: {finding.reason}",
            invalidParams=[{"name": field, "code": finding.code, "reason": finding.reason}],
        )


_API_NAMES = {"data.hoofd_object": "hoofdObject", "data.resource_url": "resourceUrl"}


def _digest_of(value: bytes) -> str:
    # The value is made here from the message, so one message is one spelling.
    return hashlib.sha256(value).hexdigest()
