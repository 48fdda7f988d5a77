"""The NL GOV CloudEvents 1.0 envelope, structured JSON mode (DESIGN "Envelope")."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from contracts._types import STRICT

EVENT_TYPE_PREFIX = "nl.overheid.ketenzaken."
MAX_EVENT_BYTES = 64 * 1024
"""The NL GOV profile's forwarding minimum; larger documents travel by `dataref`."""

CONTENT_TYPE = "application/cloudevents+json"

# No named groups: the pattern is published in the JSON Schemas, and ECMA-262
# regexes (what most JSON Schema validators use) reject Python's `(?P<name>...)`.
_SOURCE = re.compile(r"^urn:nld:oin:([0-9]{20}):systeem:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Source = Annotated[str, StringConstraints(pattern=_SOURCE.pattern)]
"""`urn:nld:oin:<20-digit OIN>:systeem:<system-name>`."""

EventType = Annotated[
    str,
    StringConstraints(pattern=r"^nl\.overheid\.ketenzaken\.[a-z]+(-[a-z]+)*(\.v[2-9][0-9]*)?$"),
]
UriString = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$", max_length=2048)
]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
"""A signing key's id: the first 16 hex digits of SHA-256 over the raw public key."""

# Standard base64 of exactly 64 bytes, canonical: the last character carries two
# bits and four zero bits, so only one spelling of each signature is accepted.
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{85}[AQgw]==$")]

DataT = TypeVar("DataT", bound=BaseModel)


def event_type(name: str) -> str:
    """The full CloudEvents type of an event name: `handoff-requested` → `nl.overheid...`."""
    return EVENT_TYPE_PREFIX + name


def schema_uri(name: str) -> str:
    """The `dataschema` URI of an event name's committed JSON Schema."""
    return f"urn:nld:ketenbus:schema:{name}"


def source_urn(oin: str, system: str) -> str:
    """The `source` attribute for a system of the organisation with this OIN."""
    return f"urn:nld:oin:{oin}:systeem:{system}"


def oin_of_source(source: str) -> str:
    """The OIN in a `source` URN (raises ValueError if it is not one)."""
    match = _SOURCE.match(source)
    if match is None:
        raise ValueError(f"not a source URN: {source!r}")
    return match[1]


class CaseEvent(BaseModel, Generic[DataT]):
    """One event of one case: CloudEvents context attributes plus typed `data`."""

    model_config = STRICT

    name: ClassVar[str]
    """The event name, without the type prefix; set by each event class."""

    specversion: Literal["1.0"]
    id: UUID
    source: Source
    type: EventType
    subject: UUID = Field(description="The case id: a UUID, never personal data.")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: UriString | None = None
    correlationid: UUID = Field(description="The case chain this event belongs to.")
    causationid: UUID | None = Field(default=None, description="The event this one answers.")
    sequence: int = Field(ge=1, description="Per case, per emitter, from 1.")
    dataref: UriString | None = None
    signingkey: KeyId | None = Field(
        default=None,
        description="The id of the Ed25519 key that signed the event: the first 16 hex "
        "digits of SHA-256 over the raw 32-byte public key in the agency registry.",
    )
    signature: Signature | None = Field(
        default=None,
        description="Standard base64 of the Ed25519 signature over the event's RFC 8785 "
        "canonical form without this attribute.",
    )
    data: DataT

    @property
    def case_id(self) -> UUID:
        return self.subject

    @classmethod
    def new(
        cls,
        *,
        source: str,
        case_id: UUID,
        data: DataT,
        sequence: int = 1,
        correlationid: UUID | None = None,
        causationid: UUID | None = None,
        time: datetime | None = None,
        **extra: Any,
    ) -> Self:
        """A fresh event with a new id, the current time and this type's schema."""
        return cls(
            specversion="1.0",
            id=uuid.uuid4(),
            source=source,
            type=event_type(cls.name),
            subject=case_id,
            time=time or datetime.now(UTC),
            dataschema=schema_uri(cls.name),
            correlationid=correlationid or case_id,
            causationid=causationid,
            sequence=sequence,
            data=data,
            **extra,
        )

    def to_json(self) -> bytes:
        """The structured-mode wire form: one JSON object, absent attributes omitted."""
        return self.model_dump_json(exclude_none=True).encode()
