"""The language of Ketenbus: envelope, events, case model, registry and topics.

Pure pydantic and the standard library, no I/O: any agency system can import
``contracts`` on its own to build, validate and read the events it exchanges
with the bus. ``contracts`` never imports ``services``.
"""

from contracts.case import (
    ActionTaken,
    CaseContext,
    CaseFlag,
    CitizenPromise,
    EscalationLevel,
    EscalationPath,
    OpenDeadline,
    PersonalSection,
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

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPE_PREFIX",
    "MAX_EVENT_BYTES",
    "ActionTaken",
    "Agency",
    "AgencyRegistry",
    "AnyEvent",
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
    "Subscription",
    "event_type",
    "oin_of_source",
    "parse_event",
    "schema_uri",
    "source_urn",
]
