"""Constrained scalar types shared by the envelope, the events and the registry."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)
"""Every contract model: no coercion, no unknown fields, immutable."""

AgencyCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,31}$")]
"""An agency's short code from the registry: `belastingdienst`, `gm0363`."""

TeamCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
"""An escalation team's code, unique within its agency."""

CategoryCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
"""A case category: `schulden`, `toeslagen-herstel`, ..."""

EventName = Annotated[str, StringConstraints(pattern=r"^[a-z]+(-[a-z]+)*(\.v[2-9][0-9]*)?$")]
"""An event type without the `nl.overheid.ketenzaken.` prefix: `handoff-requested`."""

Oin = Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
"""Organisatie-identificatienummer: 20 digits."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
"""Free text that describes the case work, never the citizen."""

Reference = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A law or rule reference, such as `Awir art. 26`."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


PositiveDuration = Annotated[timedelta, AfterValidator(_positive)]
"""An ISO 8601 duration (`PT4H`, `P2D`) longer than zero."""

EscalationLevelNumber = Annotated[int, Field(ge=1, le=9)]
