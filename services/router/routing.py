"""What to produce for one outbox message: the pure decision, no I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from contracts import topics
from contracts.envelope import CONTENT_TYPE, CaseEvent, oin_of_source, source_urn
from contracts.events import EVENT_CLASSES, DeliveryFailed, DeliveryFailure
from contracts.parse import EventRejected, parse_event
from contracts.registry import Agency, AgencyRegistry
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    correlation_id: str | None = None


@dataclass(slots=True)
class RoutingStats:
    routed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    """Messages whose every output Kafka has acknowledged."""

    @property
    def seen(self) -> int:
        return self.routed + sum(self.rejected.values())


class CaseRouting:
    """Decides, per outbox message, what goes to the case log, the inboxes and the DLQ."""

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self.stats = RoutingStats()
        self._notice_source = source_urn(registry.operator.oin, "ketenbus-router")
        self._debug = log.is_enabled_for(logging.DEBUG)
        self._subscribers: dict[str, tuple[str, ...]] = {
            name: tuple(agency.code for agency, _ in registry.subscribers(name))
            for name in EVENT_CLASSES
        }

    def route(self, message: OutboxMessage) -> list[Outgoing]:
        agency_code = topics.agency_of_outbox(message.topic)
        agency = self.registry.agency(agency_code) if agency_code else None
        if agency is None:
            return self._reject(message, None, None, "unknown-agency", "not a registered outbox")
        try:
            event = parse_event(message.value)
        except EventRejected as exc:
            return self._reject(message, agency, None, exc.code, str(exc))
        problem = self._refusal(message, agency, event)
        if problem is not None:
            return self._reject(message, agency, event, *problem)
        self.stats.routed += 1
        case_id = str(event.subject)
        key = case_id.encode()
        headers = {"content-type": CONTENT_TYPE}
        chain = str(event.correlationid)
        out = [Outgoing(topics.CASES, key, message.value, headers, chain)]
        out += [
            Outgoing(topics.inbox(code), key, message.value, headers, chain)
            for code in self._receivers(event, agency.code)
        ]
        if self._debug:  # one line per event is for debugging only, and costs at full rate
            log.debug(
                "event routed",
                case_id=case_id,
                event_id=str(event.id),
                correlation_id=chain,
                type=event.name,
                receivers=len(out) - 1,
            )
        return out

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
        return None

    def _receivers(self, event: CaseEvent[Any], sender: str) -> list[str]:
        receivers = dict.fromkeys(self._subscribers.get(event.name, ()))
        # The parties an event names: both ends of a handoff, and the agency a
        # resolution forces the case to (it must learn that it now holds the case).
        for party in ("from_agency", "to_agency", "handoff_to"):
            code = getattr(event.data, party, None)
            if isinstance(code, str) and self.registry.agency(code) is not None:
                receivers[code] = None
        receivers.pop(sender, None)
        return list(receivers)

    def _reject(
        self,
        message: OutboxMessage,
        agency: Agency | None,
        event: CaseEvent[Any] | None,
        code: str,
        reason: str,
    ) -> list[Outgoing]:
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
        chain = str(event.correlationid) if event is not None else str(case_id)
        out = [Outgoing(topics.DLQ, message.key, message.value, headers, chain)]
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


def _case_of_key(key: bytes | None) -> UUID:
    try:
        return UUID(key.decode()) if key else NIL_CASE
    except (UnicodeDecodeError, ValueError):
        return NIL_CASE
