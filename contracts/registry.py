"""The agency registry: who is on the bus, what each may emit and receive.

The model validates a registry document (already parsed from YAML or JSON by
the caller) and answers the questions the router asks per event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal, Self

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts._types import (
    AgencyCode,
    CategoryCode,
    EventName,
    Oin,
    PositiveDuration,
    ShortText,
    TeamCode,
)
from contracts.case import EscalationPath
from contracts.events import EVENT_CLASSES

_MODEL = ConfigDict(extra="forbid", frozen=True)

ContextField = Literal["actions", "promises", "deadlines", "flags", "personal"]


def key_id(public_key: bytes) -> str:
    """The id of an Ed25519 public key: the first 16 hex digits of SHA-256 over its 32 bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def public_key_bytes(encoded: str) -> bytes:
    """The 32 raw bytes of a registry `signing_key`; ValueError says what is wrong with it."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "must be standard base64 (A-Z a-z 0-9 + /, padded with =) of a 32-byte "
            "Ed25519 public key"
        ) from None
    if len(raw) != 32:
        raise ValueError(f"must be an Ed25519 public key of 32 bytes, got {len(raw)} bytes")
    if base64.b64encode(raw).decode() != encoded:
        # One spelling per key, the one `ketenbus keys new` prints, so its text finds it.
        raise ValueError("is not in canonical base64 (the padding bits must be zero)")
    try:
        # A key with no X25519 form (a low-order point) could not be sealed for.
        VerifyKey(raw).to_curve25519_public_key()
    except CryptoError:
        raise ValueError("is not a valid Ed25519 public key") from None
    return raw


class RegistryInvalid(ValueError):
    """The registry cannot be used; each problem names its entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Subscription(BaseModel):
    """Event types an agency receives, why, and which context fields it may see."""

    model_config = _MODEL
    events: list[EventName] = Field(min_length=1)
    purpose: ShortText
    legal_basis: ShortText
    fields: list[ContextField] = Field(default_factory=list)


class EscalationTeam(BaseModel):
    model_config = _MODEL
    code: TeamCode
    name: ShortText


class Agency(BaseModel):
    model_config = _MODEL
    code: AgencyCode
    name: ShortText
    oin: Oin
    signing_key: str | None = Field(
        default=None,
        description="Ed25519 public key, standard base64 of its 32 raw bytes. It verifies "
        "the agency's signatures, and its X25519 form is what personal data is sealed for.",
    )
    emits: list[EventName] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=list)
    escalation_teams: list[EscalationTeam] = Field(default_factory=list)

    @field_validator("signing_key")
    @classmethod
    def _ed25519_public_key(cls, value: str | None) -> str | None:
        if value is not None:
            public_key_bytes(value)
        return value

    @cached_property
    def key_id(self) -> str | None:
        """The id of the agency's signing key (`signingkey` on its events), if it has one."""
        if self.signing_key is None:
            return None
        return key_id(public_key_bytes(self.signing_key))

    @cached_property
    def verify_key(self) -> VerifyKey | None:
        """The agency's signing key, ready to verify with (built once per registry load)."""
        if self.signing_key is None:
            return None
        return VerifyKey(public_key_bytes(self.signing_key))


class CaseCategory(BaseModel):
    model_config = _MODEL
    code: CategoryCode
    name: ShortText
    idle_limit: PositiveDuration = timedelta(days=14)
    handoff_fields: list[ContextField] = Field(default_factory=list)
    handoff_purpose: ShortText = Field(
        description="Why a handoff's receiver gets the case: the purpose in its audit records."
    )
    handoff_legal_basis: ShortText = Field(
        description="The law that lets a handoff's receiver see the handoff_fields."
    )
    escalation_purpose: ShortText = Field(
        description="Why an escalation team is alerted to a case: the purpose in its audit records."
    )
    escalation_legal_basis: ShortText = Field(
        description="The law under which an escalation team sees the case's flags."
    )
    escalation_path: EscalationPath


class BusOperator(BaseModel):
    """The bus itself: the source of the notices it sends."""

    model_config = _MODEL
    name: ShortText
    oin: Oin


class AgencyRegistry(BaseModel):
    model_config = _MODEL
    operator: BusOperator
    agencies: list[Agency] = Field(min_length=1)
    categories: list[CaseCategory] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AgencyRegistry:
        problems: list[str] = []
        _unique(problems, "agency code", [a.code for a in self.agencies])
        _unique(problems, "OIN", [a.oin for a in self.agencies] + [self.operator.oin])
        _unique(problems, "category code", [c.code for c in self.categories])
        # By key id: an event names its key by id, so two keys may not share one either.
        holders: dict[str, str] = {}
        for agency in self.agencies:
            if agency.key_id is None:
                continue
            if (holder := holders.setdefault(agency.key_id, agency.code)) != agency.code:
                problems.append(
                    f"agency {agency.code!r}: signing_key has the key id of agency {holder!r} "
                    f"({agency.key_id}): each agency needs its own key pair"
                )
        teams = {(a.code, t.code) for a in self.agencies for t in a.escalation_teams}
        for agency in self.agencies:
            problems.extend(
                f"agency {agency.code!r}: emits unknown event type {name!r}"
                for name in agency.emits
                if name not in EVENT_CLASSES
            )
            problems.extend(
                f"agency {agency.code!r}: subscription {number} names unknown event type {name!r}"
                for number, sub in enumerate(agency.subscriptions)
                for name in sub.events
                if name not in EVENT_CLASSES
            )
        problems.extend(
            f"category {category.code!r}: level {level.level} names team "
            f"{level.team!r} of agency {level.agency!r}, which the registry lacks"
            for category in self.categories
            for level in category.escalation_path.levels
            if (level.agency, level.team) not in teams
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_document(cls, document: Any) -> AgencyRegistry:
        """Validate a parsed registry document; RegistryInvalid names each bad entry."""
        try:
            # Through JSON, so durations (`PT4H`) read as the wire format defines them.
            return cls.model_validate_json(json.dumps(document, default=str))
        except ValidationError as exc:
            raise RegistryInvalid(_describe(exc, document)) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy whose lookups are worked out again from its own agencies and categories."""
        copied = super().model_copy(update=update, deep=deep)
        for name in _LOOKUPS:
            copied.__dict__.pop(name, None)  # copied from this registry, maybe stale there
        return copied

    # Looked up for every event; a plain cached attribute is several times faster
    # than a pydantic private attribute, which goes through __getattr__.
    @cached_property
    def _by_code(self) -> dict[str, Agency]:
        return {a.code: a for a in self.agencies}

    @cached_property
    def _by_oin(self) -> dict[str, Agency]:
        return {a.oin: a for a in self.agencies}

    @cached_property
    def _by_key_id(self) -> dict[str, Agency]:
        return {a.key_id: a for a in self.agencies if a.key_id is not None}

    @cached_property
    def _verify_keys(self) -> dict[str, VerifyKey]:
        return {
            key: agency.verify_key
            for key, agency in self._by_key_id.items()
            if agency.verify_key is not None
        }

    @cached_property
    def _by_category(self) -> dict[str, CaseCategory]:
        return {c.code: c for c in self.categories}

    def agency(self, code: str) -> Agency | None:
        return self._by_code.get(code)

    def agency_by_oin(self, oin: str) -> Agency | None:
        return self._by_oin.get(oin)

    def agency_by_key_id(self, key_id: str) -> Agency | None:
        """The agency whose registered signing key has this id (`signingkey`)."""
        return self._by_key_id.get(key_id)

    def verify_key(self, key_id: str) -> VerifyKey | None:
        """The registered signing key with this id, ready to verify with."""
        return self._verify_keys.get(key_id)

    def category(self, code: str) -> CaseCategory | None:
        return self._by_category.get(code)

    def subscribers(self, event_name: str) -> list[tuple[Agency, Subscription]]:
        """Every agency subscribed to this event name, with the subscription that grants it."""
        found: list[tuple[Agency, Subscription]] = []
        for agency in self.agencies:
            for sub in agency.subscriptions:
                if event_name in sub.events:
                    found.append((agency, sub))
                    break
        return found


_LOOKUPS = tuple(
    name for name, value in vars(AgencyRegistry).items() if isinstance(value, cached_property)
)


def _unique(problems: list[str], what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            problems.append(f"{what} {value!r} appears more than once")
        seen.add(value)


def _describe(exc: ValidationError, document: Any) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        where = _where(error["loc"], document)
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return problems


def _where(loc: tuple[int | str, ...], document: Any) -> str:
    """`agencies[2] (uwv).oin` — the path, with each list entry's code where it has one."""
    parts: list[str] = []
    node = document
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("code"), str):
                label += f" ({node['code']})"
            parts.append(label)
        else:
            parts.append(f".{part}" if parts else part)
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)
