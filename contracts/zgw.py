"""The VNG Notificaties API 1.0 message, and how it becomes a `zgw-notificatie` event.

A ZGW system (Open Zaak, a zaaksysteem) sends a message when a resource
changed: `kanaal`, `hoofdObject`, `resource`, `resourceUrl`, `actie`,
`aanmaakdatum`, `kenmerken`. The gateway takes it at `POST /api/v1/notificaties`
and relays it as `nl.overheid.ketenzaken.zgw-notificatie`:

- `subject` (the case id) is `case_of_zaak(hoofdObject)`: a UUID derived from
  the main object's URL, so every notification about one zaak travels on one
  key, in order. An agency that opens a Ketenbus case for a zaak and wants its
  notifications on that case's stream opens it under this id;
- `id` is derived from the sending agency and the message's canonical form, so
  the same message sent again is the same event (answered once, delivered once);
- `time` is the message's `aanmaakdatum`, and `sequence` that instant in
  microseconds since 1970: it increases along a zaak as the ZGW system made the
  messages, with no counter kept anywhere.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from contracts.canonical import canonical_json
from contracts.envelope import event_type, schema_uri, source_urn
from contracts.events import Notificatie, ZgwNotificatie, ZgwUrl

GATEWAY_SYSTEM = "ketenbus-gateway"
"""The system name in the `source` of what the gateway makes: the operator's gateway."""

ZAAK_NAMESPACE = uuid.UUID("4f1a5d2e-8c3b-5e7a-9d61-0b2c4e6f8a10")
"""The namespace of the case ids derived from ZGW URLs (uuid5), fixed for good."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


class NotificatieMessage(BaseModel):
    """A Notificaties API 1.0 `Notificatie`, with the field names the API gives them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)
    kanaal: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    hoofd_object: ZgwUrl = Field(alias="hoofdObject")
    resource: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    resource_url: ZgwUrl = Field(alias="resourceUrl")
    actie: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    aanmaakdatum: AwareDatetime
    kenmerken: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=100)],
        Annotated[str, StringConstraints(max_length=1000)],
    ] = Field(default_factory=dict, max_length=50)

    def api_form(self) -> dict[str, Any]:
        """The message as the Notificaties API writes it (camelCase, RFC 3339 time)."""
        return self.model_dump(mode="json", by_alias=True)


def case_of_zaak(hoofd_object: str) -> UUID:
    """The case id of the zaak (or other main object) at this URL: the same for every message."""
    return uuid.uuid5(ZAAK_NAMESPACE, hoofd_object)


def notificatie_event(
    message: NotificatieMessage, *, agency: str, operator_oin: str
) -> ZgwNotificatie:
    """The bus event of `message`, sent by `agency`'s ZGW system; the same message, the same."""
    case_id = case_of_zaak(message.hoofd_object)
    fingerprint = canonical_json({"afzender": agency, "bericht": message.api_form()})
    sequence = (message.aanmaakdatum - _EPOCH) // _MICROSECOND
    return ZgwNotificatie(
        specversion="1.0",
        id=uuid.uuid5(ZAAK_NAMESPACE, fingerprint.decode()),
        source=source_urn(operator_oin, GATEWAY_SYSTEM),
        type=event_type(ZgwNotificatie.name),
        subject=case_id,
        time=message.aanmaakdatum,
        dataschema=schema_uri(ZgwNotificatie.name),
        correlationid=case_id,
        sequence=max(1, sequence),
        data=Notificatie(
            afzender=agency,
            kanaal=message.kanaal,
            hoofd_object=message.hoofd_object,
            resource=message.resource,
            resource_url=message.resource_url,
            actie=message.actie,
            aanmaakdatum=message.aanmaakdatum,
            kenmerken=dict(message.kenmerken),
        ),
    )


def message_of(data: Notificatie) -> dict[str, Any]:
    """The Notificaties API 1.0 message a `zgw-notificatie` was made from, for its receivers."""
    return NotificatieMessage(
        kanaal=data.kanaal,
        hoofd_object=data.hoofd_object,
        resource=data.resource,
        resource_url=data.resource_url,
        actie=data.actie,
        aanmaakdatum=data.aanmaakdatum,
        kenmerken=dict(data.kenmerken),
    ).api_form()
