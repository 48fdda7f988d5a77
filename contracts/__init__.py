"""The language of Ketenbus: envelope, events, case model, registry and topics.

Pydantic, PyNaCl (signatures and sealed personal data), RFC 8785 and the
standard library; no I/O but an agency's own key file (``AgencyKeys``): any
agency system can import ``contracts`` on its own to build, sign, validate and
read the events it exchanges with the bus. ``contracts`` never imports ``services``.
"""

from contracts.agency_client import AgencyKeys
from contracts.case import (
    ActionTaken,
    CaseContext,
    CaseFlag,
    CitizenPromise,
    EscalationLevel,
    EscalationPath,
    OpenDeadline,
    PersonalSection,
    SealedPersonal,
)
from contracts.envelope import (
    EVENT_TYPE_PREFIX,
    MAX_EVENT_BYTES,
    CaseEvent,
    event_type,
    oin_of_source,
    schema_uri,
    source_urn,
)
from contracts.events import (
    EVENT_CLASSES,
    AnyEvent,
    CaseClosed,
    CaseContextUpdated,
    CaseOpened,
    DeliveryFailed,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationRequested,
    EscalationResolved,
    HandoffAccepted,
    HandoffExpired,
    HandoffRejected,
    HandoffRequested,
)
from contracts.parse import EventRejected, parse_event
from contracts.registry import Agency, AgencyRegistry, RegistryInvalid, Subscription
from contracts.sealing import CannotOpen, open_personal, seal_personal, sealed_for
from contracts.signing import (
    SignatureRefused,
    canonical_form,
    key_id,
    sign_event,
    verify_signature,
)

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPE_PREFIX",
    "MAX_EVENT_BYTES",
    "ActionTaken",
    "Agency",
    "AgencyKeys",
    "AgencyRegistry",
    "AnyEvent",
    "CannotOpen",
    "CaseClosed",
    "CaseContext",
    "CaseContextUpdated",
    "CaseEvent",
    "CaseFlag",
    "CaseOpened",
    "CitizenPromise",
    "DeliveryFailed",
    "EscalationAcknowledged",
    "EscalationLevel",
    "EscalationPath",
    "EscalationRaised",
    "EscalationRequested",
    "EscalationResolved",
    "EventRejected",
    "HandoffAccepted",
    "HandoffExpired",
    "HandoffRejected",
    "HandoffRequested",
    "OpenDeadline",
    "PersonalSection",
    "RegistryInvalid",
    "SealedPersonal",
    "SignatureRefused",
    "Subscription",
    "canonical_form",
    "event_type",
    "key_id",
    "oin_of_source",
    "open_personal",
    "parse_event",
    "schema_uri",
    "seal_personal",
    "sealed_for",
    "sign_event",
    "source_urn",
    "verify_signature",
]
