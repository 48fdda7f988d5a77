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
from contracts.screening import MAX_DEPTH, nesting_exceeds, redacted, screen
from contracts.signing import SignatureRefused, verify_signature
from services.router._claims import Claim, claim_of
from services.router._verifier import UNCHECKED, VERIFIED, Verdict
from services.runtime.consumer.headers import is_text
from services.runtime.consumer.poison import ATTEMPTS_HEADER
from services.runtime.kafka.clients import Outgoing
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.router")

NIL_CASE = UUID(int=0)
"""The subject of a notice about a message whose case could not be read."""

BUS_HEADERS = topics.DLQ_HEADERS | {ATTEMPTS_HEADER, "correlation_id"}
"""Headers the bus writes on a dead letter: a sender's own of these names are not kept."""

Header = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message read from an agency's outbox, with where it came from, as it was sent."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    """None: a tombstone."""
    headers: tuple[Header, ...] = ()
    """The record's headers as sent: the values are bytes, not yet known to be text."""


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
    value: bytes
    """The event's bytes as sent (the case log carries them unchanged)."""


class CaseRouting:
    """The checks on one outbox message that need no case state, and refusals.

    In order: a registered outbox; a value (no tombstone); headers that are
    text; at most MAX_EVENT_BYTES; nested at most MAX_DEPTH; a JSON object; a
    valid signature by the source agency's registered key (before anything in
    the event is believed); a valid event; the source is the outbox's agency;
    the agency may emit the type; the key is the case id, in plain text;
    personal data is sealed, and no text holds a BSN or a NUL
    (`contracts.screening`). Holder rights need the case's custody:
    `services.router.deliver`.
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
        value = message.value
        if agency is None:
            return self.refuse(message, None, claim_of(value), "unknown-agency", UNKNOWN_AGENCY)
        if value is None:
            return self.refuse(message, agency, Claim(), "tombstone", TOMBSTONE)
        bad = [name for name, raw in message.headers if not is_text(raw)]
        if bad:
            return self.refuse(
                message, agency, claim_of(value), "malformed-headers", _bad_headers(bad)
            )
        if len(value) > MAX_EVENT_BYTES:
            return self._unparsed(message, agency, value)
        if nesting_exceeds(value):
            return self.refuse(message, agency, Claim(), "malformed-json", TOO_DEEP)
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
                return self.refuse(message, agency, Claim.of(document), exc.code, exc.reason)
        elif signature != VERIFIED:
            return self.refuse(message, agency, Claim.of(document), *signature)
        try:
            event = parse_event(value)
        except EventRejected as exc:
            claim = Claim.of(document, verified=True)
            return self.refuse(message, agency, claim, exc.code, str(exc))
        problem = self._refusal(message, agency, event) or _screened(document, value)
        if problem is not None:
            return self.refuse(message, agency, event, *problem)
        return Admitted(message, agency, event, document, value)

    def _unparsed(self, message: OutboxMessage, agency: Agency, value: bytes) -> list[Outgoing]:
        """Refuse bytes that are no event at all, with parse_event's own words."""
        claim = claim_of(value)
        try:
            parse_event(value)
        except EventRejected as exc:
            return self.refuse(message, agency, claim, exc.code, str(exc))
        return self.refuse(message, agency, claim, "malformed-json", "(event): not a JSON object")

    def _refusal(
        self,
        message: OutboxMessage,
        agency: Agency,
        event: CaseEvent[Any],
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
        if message.key != case_key:
            # The one spelling: a client hashes the key's bytes to a partition, so a case
            # keyed two ways would have its events split over partitions, out of order.
            if message.key == b'"' + case_key + b'"':
                return ("quoted-key", _quoted_key(case_key))
            return (
                "wrong-key",
                "(key): the message key must be the case id (subject) as plain UTF-8 text, "
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
        event: CaseEvent[Any] | Claim | None,
        code: str,
        reason: str,
    ) -> list[Outgoing]:
        """The dead letter (with the reason in its headers) and, to a known sender, a notice.

        `event`: the refused event when it was read and verified, else what its
        bytes claim (`Claim`), which the notice names and marks as unverified.
        """
        self.stats.rejected[code] = self.stats.rejected.get(code, 0) + 1
        claim = Claim.of_event(event) if isinstance(event, CaseEvent) else event or Claim()
        case_id = claim.case_id or _case_of_key(message.key)
        log.warning(
            "event rejected",
            reason_code=code,
            reason=reason,
            case_id=str(case_id),
            event_id=str(claim.event_id) if claim.event_id else None,
            correlation_id=str(claim.correlation_id) if claim.correlation_id else None,
            verified=claim.verified,
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
        value = message.value or b""
        if code == "unsealed-personal-data":
            # Quarantine the event, not the citizen's data: neither the personal section
            # nor a BSN written in a text goes to the DLQ.
            value = _without_personal(value)
            headers[topics.DLQ_REDACTED] = reason.split(":", 1)[0]
        chain = str(claim.correlation_id or case_id)
        sent = tuple((n, v or b"") for n, v in message.headers if n not in BUS_HEADERS)
        out = [Outgoing(topics.DLQ, message.key, value, headers, chain, sent)]
        if agency is not None:
            notice = DeliveryFailed.new(
                source=self._notice_source,
                case_id=case_id,
                causationid=claim.event_id,
                data=DeliveryFailure(
                    reason_code=code,
                    reason=reason,
                    rejected_event_id=str(claim.event_id) if claim.event_id else None,
                    rejected_event_type=claim.event_type,
                    unverified=not claim.verified,
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


UNKNOWN_AGENCY = "not a registered outbox"
TOMBSTONE = (
    "(value): the record has no value (a tombstone); an outbox carries events, "
    "and there is nothing of an agency's to delete on it"
)
TOO_DEEP = f"(event): objects and arrays nested more than {MAX_DEPTH} deep"


def _quoted_key(case_key: bytes) -> str:
    return (
        f"(key): the key is the case id as a JSON string (with quotes); send the "
        f"{len(case_key)} bytes of the id alone ({case_key.decode()}), the one spelling: "
        "clients hash the two spellings to different partitions, which would split the case"
    )


def _screened(document: dict[str, Any], value: bytes) -> tuple[str, str] | None:
    finding = screen(document, value)
    return None if finding is None else (finding.code, f"{finding.field}: {finding.reason}")


def _bad_headers(names: list[str]) -> str:
    shown = ", ".join(repr(name[:40]) for name in names[:5])
    return f"(headers): the value of {shown} is not UTF-8 text; header values must be text"


def _without_personal(value: bytes) -> bytes:
    document = json.loads(value)
    context = document.get("data", {}).get("context")
    if isinstance(context, dict):
        context.pop("personal", None)
    return json.dumps(redacted(document), separators=(",", ":"), ensure_ascii=False).encode()


def _case_of_key(key: bytes | None) -> UUID:
    try:
        return UUID(key.decode()) if key else NIL_CASE
    except (UnicodeDecodeError, ValueError):
        return NIL_CASE
