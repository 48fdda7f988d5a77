"""Typed events: one class per event type, each an envelope with its own `data`."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

from contracts._types import (
    STRICT,
    AgencyCode,
    CategoryCode,
    EscalationLevelNumber,
    Reference,
    ShortText,
    TeamCode,
)
from contracts.case import CaseContext, CaseFlag, EscalationPath
from contracts.envelope import CaseEvent

ZgwUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=1000)]
"""A ZGW API resource URL, as the Notificaties API gives it (a `uri` of at most 1000)."""


class CaseOpening(BaseModel):
    model_config = STRICT
    category: CategoryCode
    summary: ShortText
    context: CaseContext = Field(default_factory=CaseContext)
    escalation_path: EscalationPath | None = Field(
        default=None, description="Overrides the registry's default path for the category."
    )


class ContextUpdate(BaseModel):
    """Additions to the case context; what is not named stays as it was."""

    model_config = STRICT
    context: CaseContext
    escalation_path: EscalationPath | None = None


class _Handoff(BaseModel):
    model_config = STRICT
    handoff_id: UUID
    from_agency: AgencyCode = Field(description="The holder that asked for the handoff.")
    to_agency: AgencyCode = Field(description="The agency asked to take the case over.")

    @model_validator(mode="after")
    def _two_agencies(self) -> _Handoff:
        if self.from_agency == self.to_agency:
            raise ValueError("from_agency and to_agency must differ")
        return self


class HandoffRequest(_Handoff):
    reason: ShortText
    deadline: AwareDatetime = Field(description="Unanswered by then, the handoff expires.")
    context: CaseContext = Field(default_factory=CaseContext)


class HandoffAcceptance(_Handoff):
    note: ShortText | None = None


class HandoffRejection(_Handoff):
    reason: ShortText
    rule_reference: Reference | None = None


class HandoffExpiry(_Handoff):
    deadline: AwareDatetime


class EscalationRequest(BaseModel):
    model_config = STRICT
    reason: ShortText
    level: EscalationLevelNumber | None = None
    rule_reference: Reference | None = None


class TeamRef(BaseModel):
    model_config = STRICT
    agency: AgencyCode
    team: TeamCode


EscalationTrigger = Literal["handoff-expired", "idle", "ping-pong", "hardship", "manual"]
EscalationOutcome = Literal[
    "maatwerk-granted", "handoff-forced", "returned-to-holder", "no-action-needed", "other"
]


class EscalationRaise(BaseModel):
    model_config = STRICT
    escalation_id: UUID
    level: EscalationLevelNumber
    team: TeamRef
    trigger: EscalationTrigger
    cause: ShortText
    rule_reference: Reference | None = None
    acknowledge_by: AwareDatetime
    skipped_level: EscalationLevelNumber | None = Field(
        default=None, description="The level that did not acknowledge in time, if any."
    )
    skip_reason: ShortText | None = None
    flag: CaseFlag | None = None
    agency_pair: list[AgencyCode] = Field(
        default_factory=list,
        max_length=2,
        description="The agencies the case is stuck between (handoff sender, receiver), if any.",
    )


class EscalationAcknowledgement(BaseModel):
    model_config = STRICT
    escalation_id: UUID
    level: EscalationLevelNumber
    team: TeamRef
    note: ShortText | None = None


class EscalationResolution(BaseModel):
    model_config = STRICT
    escalation_id: UUID
    team: TeamRef
    outcome: EscalationOutcome
    note: ShortText | None = None
    handoff_to: AgencyCode | None = Field(
        default=None, description="With outcome handoff-forced: the agency that takes the case."
    )


class CaseClosure(BaseModel):
    model_config = STRICT
    outcome: ShortText


class DeliveryFailure(BaseModel):
    """Why the bus refused something an agency sent; goes to the sender's inbox."""

    model_config = STRICT
    reason_code: str
    reason: str
    rejected_event_id: str | None = Field(
        default=None,
        description="The refused event's `id`, when it could be read from the message; "
        "null when the message is no JSON object or has no UUID `id`.",
    )
    rejected_event_type: str | None = Field(
        default=None,
        description="The refused event's `type`, read as the id is.",
    )
    unverified: bool = Field(
        default=False,
        description="True when the id, the type and this notice's subject were read from "
        "a message whose signature the bus did not verify (refused before or at the "
        "signature check): what the message claims, not what its sender is proven to "
        "have sent.",
    )
    topic: str
    partition: int
    offset: int


class Notificatie(BaseModel):
    """A VNG Notificaties API 1.0 message a ZGW system (Open Zaak, a zaaksysteem) sent.

    The gateway takes it at `POST /api/v1/notificaties` and relays it to the
    agencies that subscribe to `zgw-notificatie`; the fields are the message's
    own, in snake_case. It says that a ZGW resource changed, never what it holds:
    a receiver fetches the resource from `resource_url` with its own rights.
    """

    model_config = STRICT
    afzender: AgencyCode = Field(
        description="The agency whose ZGW system sent the message (by its gateway token)."
    )
    kanaal: Annotated[str, StringConstraints(min_length=1, max_length=50)] = Field(
        description="The Notificaties channel: `zaken`, `documenten`, `besluiten`, ..."
    )
    hoofd_object: ZgwUrl = Field(description="The main object's URL (for `zaken` the zaak).")
    resource: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    resource_url: ZgwUrl
    actie: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="What happened to the resource: `create`, `update`, `destroy`, ..."
    )
    aanmaakdatum: AwareDatetime
    kenmerken: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=100)],
        Annotated[str, StringConstraints(max_length=1000)],
    ] = Field(default_factory=dict, max_length=50)


class CaseOpened(CaseEvent[CaseOpening]):
    name: ClassVar[str] = "case-opened"
    type: Literal["nl.overheid.ketenzaken.case-opened"]


class CaseContextUpdated(CaseEvent[ContextUpdate]):
    name: ClassVar[str] = "case-context-updated"
    type: Literal["nl.overheid.ketenzaken.case-context-updated"]


class HandoffRequested(CaseEvent[HandoffRequest]):
    name: ClassVar[str] = "handoff-requested"
    type: Literal["nl.overheid.ketenzaken.handoff-requested"]


class HandoffAccepted(CaseEvent[HandoffAcceptance]):
    name: ClassVar[str] = "handoff-accepted"
    type: Literal["nl.overheid.ketenzaken.handoff-accepted"]


class HandoffRejected(CaseEvent[HandoffRejection]):
    name: ClassVar[str] = "handoff-rejected"
    type: Literal["nl.overheid.ketenzaken.handoff-rejected"]


class HandoffExpired(CaseEvent[HandoffExpiry]):
    name: ClassVar[str] = "handoff-expired"
    type: Literal["nl.overheid.ketenzaken.handoff-expired"]


class EscalationRequested(CaseEvent[EscalationRequest]):
    name: ClassVar[str] = "escalation-requested"
    type: Literal["nl.overheid.ketenzaken.escalation-requested"]


class EscalationRaised(CaseEvent[EscalationRaise]):
    name: ClassVar[str] = "escalation-raised"
    type: Literal["nl.overheid.ketenzaken.escalation-raised"]


class EscalationAcknowledged(CaseEvent[EscalationAcknowledgement]):
    name: ClassVar[str] = "escalation-acknowledged"
    type: Literal["nl.overheid.ketenzaken.escalation-acknowledged"]


class EscalationResolved(CaseEvent[EscalationResolution]):
    name: ClassVar[str] = "escalation-resolved"
    type: Literal["nl.overheid.ketenzaken.escalation-resolved"]


class CaseClosed(CaseEvent[CaseClosure]):
    name: ClassVar[str] = "case-closed"
    type: Literal["nl.overheid.ketenzaken.case-closed"]


class DeliveryFailed(CaseEvent[DeliveryFailure]):
    """Sent by the bus itself; `subject` is the nil UUID when the case is unknown."""

    name: ClassVar[str] = "delivery-failed"
    type: Literal["nl.overheid.ketenzaken.delivery-failed"]


class ZgwNotificatie(CaseEvent[Notificatie]):
    """Made by the gateway from a Notificaties message; `subject` is the zaak's case id.

    The source is the bus operator's `ketenbus-gateway` system: the message came
    unsigned, over HTTP, from the ZGW system the gateway authenticated. It is
    not part of a case's custody (`contracts.handoff`).
    """

    name: ClassVar[str] = "zgw-notificatie"
    type: Literal["nl.overheid.ketenzaken.zgw-notificatie"]


AnyEvent = Annotated[
    CaseOpened
    | CaseContextUpdated
    | HandoffRequested
    | HandoffAccepted
    | HandoffRejected
    | HandoffExpired
    | EscalationRequested
    | EscalationRaised
    | EscalationAcknowledged
    | EscalationResolved
    | CaseClosed
    | DeliveryFailed
    | ZgwNotificatie,
    Field(discriminator="type"),
]

EVENT_CLASSES: dict[str, type[CaseEvent[Any]]] = {
    cls.name: cls
    for cls in (
        CaseOpened,
        CaseContextUpdated,
        HandoffRequested,
        HandoffAccepted,
        HandoffRejected,
        HandoffExpired,
        EscalationRequested,
        EscalationRaised,
        EscalationAcknowledged,
        EscalationResolved,
        CaseClosed,
        DeliveryFailed,
        ZgwNotificatie,
    )
}
"""Every event class by its event name (`handoff-requested`)."""

HANDOFF_EVENTS = frozenset(
    {"handoff-requested", "handoff-accepted", "handoff-rejected", "handoff-expired"}
)
