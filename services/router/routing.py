"""The checks on an outbox message that need no state, and what a refusal produces."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from contracts import topics
from contracts.case import PersonalSection
from contracts.envelope import CONTENT_TYPE, MAX_EVENT_BYTES, CaseEvent, oin_of_source, source_urn
from contracts.events import DeliveryFailed, DeliveryFailure
from contracts.parse import EventRejected, parse_event, read_json
from contracts.registry import Agency, AgencyRegistry
from contracts.signing import SignatureRefused, verify_signature
from services.router._verifier import UNCHECKED, VERIFIED, Verdict
from services.runtime.kafka import Outgoing
from services.runtime.logging import get_logger

log = get_logger("ketenbus.router")

NIL_CASE = UUID(int=0)
"""The subject of a notice about a message whose case could not be read."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message read from an agency's outbox, with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class RoutingStats:
    routed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    """Messages whose every output Kafka has acknowledged."""

    @property
    def seen(self) -> int:
        return self.routed + sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class Admitted:
    """A message that passed every check that needs no case state: who sent what."""

    message: OutboxMessage
    agency: Agency
    event: CaseEvent[Any]
    document: dict[str, Any]
    """The event as the JSON object it was sent as (minimised copies are cut from it)."""


class CaseRouting:
    """The checks on one outbox message that need no case state, and refusals.

    In order: a registered outbox; at most MAX_EVENT_BYTES; a JSON object; a
    valid signature by the source agency's registered key (before anything in
    the event is believed); a valid event; the source is the outbox's agency;
    the agency may emit the type; the key is the case id; personal data is
    sealed. Holder rights need the case's custody: `services.router.deliver`.
    """

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.stats = RoutingStats()
        self._notice_source = source_urn(registry.operator.oin, "ketenbus-router")

    def check(  # noqa: PLR0911 - one return per check, in the order the docstring gives
        self, message: OutboxMessage, signature: Verdict = UNCHECKED
    ) -> Admitted | list[Outgoing]:
        """The admitted message, or what refusing it produces (dead letter, notice).

        `signature`: the signature's verdict when a worker checked it apart
        (`services.router._verifier`); unchecked, it is verified here.
        """
        agency_code = topics.agency_of_outbox(message.topic)
        agency = self.registry.agency(agency_code) if agency_code else None
        if agency is None:
            return self.refuse(message, None, None, "unknown-agency", "not a registered outbox")
        value = message.value
        if len(value) > MAX_EVENT_BYTES:
            return self._unparsed(message, agency, value)
        try:
            document = read_json(value)
        except (UnicodeDecodeError, ValueError):
            return self._unparsed(message, agency, value)
        if not isinstance(document, dict):
            return self._unparsed(message, agency, value)
        if signature == UNCHECKED:
            try:
                verify_signature(document, self.registry)
            except SignatureRefused as exc:
                return self.refuse(message, agency, None, exc.code, exc.reason)
        elif signature != VERIFIED:
            return self.refuse(message, agency, None, *signature)
        try:
            event = parse_event(value)
        except EventRejected as exc:
            return self.refuse(message, agency, None, exc.code, str(exc))
        problem = self._refusal(message, agency, event)
        if problem is not None:
            return self.refuse(message, agency, event, *problem)
        return Admitted(message, agency, event, document)

    def _unparsed(self, message: OutboxMessage, agency: Agency, value: bytes) -> list[Outgoing]:
        """Refuse bytes that are no event at all, with parse_event's own words."""
        try:
            parse_event(value)
        except EventRejected as exc:
            return self.refuse(message, agency, None, exc.code, str(exc))
        return self.refuse(message, agency, None, "malformed-json", "(event): not a JSON object")

    def _refusal(
        self, message: OutboxMessage, agency: Agency, event: CaseEvent[Any]
    ) -> tuple[str, str] | None:
        if oin_of_source(event.source) != agency.oin:
            return (
                "forged-source",
                f"source: OIN {oin_of_source(event.source)} is not that of agency "
                f"{agency.code!r}, whose outbox this is",
            )
        if event.name not in agency.emits:
            return ("unauthorised-type", f"type: agency {agency.code!r} may not emit {event.name}")
        case_key = str(event.subject).encode()
        # Tools that write JSON keys (Kafka Connect, tansu cat) send the id as a JSON string.
        if message.key != case_key and message.key != b'"' + case_key + b'"':
            return (
                "wrong-key",
                "(key): the message key must be the case id (subject), "
                "so that one case's events stay in order",
            )
        context = getattr(event.data, "context", None)
        if isinstance(getattr(context, "personal", None), PersonalSection):
            return (
                "unsealed-personal-data",
                "data.context.personal: personal data must be sealed for its receivers "
                "(contracts.sealing), never sent in clear",
            )
        return None

    def refuse(
        self,
        message: OutboxMessage,
        agency: Agency | None,
        event: CaseEvent[Any] | None,
        code: str,
        reason: str,
    ) -> list[Outgoing]:
        """The dead letter (with the reason in its headers) and, to a known sender, a notice."""
        self.stats.rejected[code] = self.stats.rejected.get(code, 0) + 1
        case_id = event.subject if event is not None else _case_of_key(message.key)
        log.warning(
            "event rejected",
            reason_code=code,
            reason=reason,
            case_id=str(case_id),
            event_id=str(event.id) if event is not None else None,
            correlation_id=str(event.correlationid) if event is not None else None,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        headers = {
            topics.DLQ_REASON: reason,
            topics.DLQ_REASON_CODE: code,
            topics.DLQ_ORIGIN_TOPIC: message.topic,
            topics.DLQ_ORIGIN_PARTITION: str(message.partition),
            topics.DLQ_ORIGIN_OFFSET: str(message.offset),
            topics.DLQ_REJECTED_BY: "router",
        }
        value = message.value
        if code == "unsealed-personal-data":
            # Quarantine the event, not the citizen's data: no personal section in the DLQ.
            value = _without_personal(value)
            headers[topics.DLQ_REDACTED] = "data.context.personal"
        chain = str(event.correlationid) if event is not None else str(case_id)
        out = [Outgoing(topics.DLQ, message.key, value, headers, chain)]
        if agency is not None:
            notice = DeliveryFailed.new(
                source=self._notice_source,
                case_id=case_id,
                causationid=event.id if event is not None else None,
                data=DeliveryFailure(
                    reason_code=code,
                    reason=reason,
                    rejected_event_id=str(event.id) if event is not None else None,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                ),
            )
            out.append(
                Outgoing(
                    topics.inbox(agency.code),
                    str(case_id).encode(),
                    notice.to_json(),
                    {"content-type": CONTENT_TYPE},
                    chain,
                )
            )
        return out


def _without_personal(value: bytes) -> bytes:
    document = json.loads(value)
    context = document.get("data", {}).get("context")
    if isinstance(context, dict):
        context.pop("personal", None)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _case_of_key(key: bytes | None) -> UUID:
    try:
        return UUID(key.decode()) if key else NIL_CASE
    except (UnicodeDecodeError, ValueError):
        return NIL_CASE
