"""The case: its context, which travels with it, and its escalation path."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

from contracts._types import (
    STRICT,
    AgencyCode,
    EscalationLevelNumber,
    PositiveDuration,
    Reference,
    ShortText,
    TeamCode,
)

CONTEXT_FIELDS = ("actions", "promises", "deadlines", "flags", "personal")
"""The sections of a case context a registry subscription can grant."""


class ActionTaken(BaseModel):
    """Something an agency did on the case."""

    model_config = STRICT
    at: AwareDatetime
    agency: AgencyCode
    description: ShortText


class CitizenPromise(BaseModel):
    """What an agency promised the citizen, and by when."""

    model_config = STRICT
    agency: AgencyCode
    promise: ShortText
    due: date


class OpenDeadline(BaseModel):
    """A deadline that runs on the case (objection period, payment term, ...)."""

    model_config = STRICT
    description: ShortText
    due: date
    legal_basis: Reference | None = None


class CaseFlag(BaseModel):
    """A hardship or vulnerability flag; escalated at once at the level it asks for."""

    model_config = STRICT
    kind: Literal["hardship", "vulnerability"]
    raised_by: AgencyCode
    escalate_at_level: EscalationLevelNumber = 1
    note: ShortText
    rule_reference: Reference | None = None


Bsn = Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")]


class MoneyAmount(BaseModel):
    """An amount on the case, in euro cents to stay exact."""

    model_config = STRICT
    label: ShortText
    cents: int


class PersonalSection(BaseModel):
    """Personal data: minimised per receiver and never logged."""

    model_config = STRICT
    bsn: Bsn | None = None
    name: ShortText | None = None
    address: ShortText | None = None
    phone: ShortText | None = None
    email: ShortText | None = None
    amounts: list[MoneyAmount] = Field(default_factory=list)


# Standard base64 with padding; at least the 48 bytes a sealed box adds to its content.
SealedBoxText = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        min_length=64,
    ),
]


class SealedPersonal(BaseModel):
    """The personal section sealed per receiving agency: only that agency can open its box.

    Each value is the standard-base64 X25519 sealed box (libsodium
    `crypto_box_seal`) of the JSON of a PersonalSection, sealed for the X25519
    form of the agency's registered Ed25519 signing key. `contracts.sealing`
    seals and opens them.
    """

    model_config = STRICT
    sealed: dict[AgencyCode, SealedBoxText] = Field(
        min_length=1,
        description="Per receiving agency code, the sealed box of the personal section.",
        # The model refuses a key that is not an agency code; say so in the schema too.
        json_schema_extra={"additionalProperties": False},
    )


class CaseContext(BaseModel):
    """What travels with the case from desk to desk."""

    model_config = STRICT
    actions: list[ActionTaken] = Field(default_factory=list)
    promises: list[CitizenPromise] = Field(default_factory=list)
    deadlines: list[OpenDeadline] = Field(default_factory=list)
    flags: list[CaseFlag] = Field(default_factory=list)
    personal: PersonalSection | SealedPersonal | None = Field(
        default=None,
        description="Personal data, in the clear or sealed per receiving agency.",
    )


class EscalationLevel(BaseModel):
    """One rung: which team is alerted and how long it has to acknowledge."""

    model_config = STRICT
    level: EscalationLevelNumber
    agency: AgencyCode
    team: TeamCode
    acknowledge_within: PositiveDuration


class EscalationPath(BaseModel):
    """The ordered levels of a case's escalation, lowest first."""

    model_config = STRICT
    levels: list[EscalationLevel] = Field(min_length=1, max_length=9)

    @model_validator(mode="after")
    def _levels_in_order(self) -> EscalationPath:
        numbers = [level.level for level in self.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"levels must be numbered 1..{len(numbers)} in order, got {numbers}")
        return self

    def at(self, level: int) -> EscalationLevel:
        """The rung numbered `level` (the top rung if `level` is higher)."""
        return self.levels[min(level, len(self.levels)) - 1]
