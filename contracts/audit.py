"""The audit trail's records and their hash chain: who received which fields of which case.

The bus writes one `AuditRecord` per delivery of an event to an agency's
inbox and publishes it on `ketenbus.audit`. Each writer (every router,
escalation and gateway process) keeps a chain of its own, named in the
record's `chain`, so that writers never queue on each other. Every record
carries the hash of the one before it on its chain, so changing, removing or
reordering a record breaks the chain at that record. Auditors outside the bus
import this module on its own to check the records they read from the topic
(`check_chain`, per chain, in `seq` order); it does no I/O.

How a record's hash is computed (so it can be checked without this code too):
take the record as a JSON object without its `hash` and `chain` members (that
is, the entry's fields plus `seq` and `prev_hash`, with UUIDs as strings and
`delivered_at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`), serialise it with
the JSON Canonicalization Scheme (RFC 8785) and take the SHA-256 of those
bytes, in lowercase hex. The first record of each chain has `prev_hash`
`GENESIS_HASH`. The chains themselves are anchored in a chain of their
openings (`opening_hash`), which the store keeps with its head.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
)

from contracts._types import AgencyCode, EventName, ShortText
from contracts.canonical import EXACT_INT, canonical_flat, canonical_json

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first record: there is nothing before it."""

LEGACY_CHAIN = "ketenbus"
"""The chain every record was on before each writer kept its own."""

ChainName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._:/-]{0,119}$")]
"""The name of one writer's chain: `router/<instance>`, `escalation/<instance>`, ..."""

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""How `delivered_at` is written in a record's JSON, and so in what its hash covers."""

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest in lowercase hex."""

FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,47}$")]
"""The name of a section of the case context: `actions`, `personal`, ..."""


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class AuditEntry(BaseModel):
    """One delivery: which agency received which context fields of which case, and why.

    Names only: the record says that `personal` was delivered, never what it held.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: UUID
    event_id: UUID = Field(description="The event delivered.")
    event_type: EventName = Field(description="The event name: handoff-requested.")
    receiver: AgencyCode = Field(description="The agency whose inbox it was delivered to.")
    fields: list[FieldName] = Field(
        description="The context fields delivered; empty when the event carries no context."
    )
    purpose: ShortText = Field(description="The receiver's subscription purpose.")
    legal_basis: ShortText = Field(description="The law or rule the delivery rests on.")
    delivered_at: Annotated[AwareDatetime, AfterValidator(_in_utc)]

    @field_serializer("delivered_at", when_used="json")
    def _fixed_time(self, value: datetime) -> str:
        # One spelling per instant (pydantic drops a zero fraction), so the hash an
        # auditor computes from the published JSON is the hash that was written.
        return _utc_text(value)


class AuditRecord(AuditEntry):
    """An entry linked into its chain: its place (`seq`), its predecessor's hash, its own."""

    seq: int = Field(ge=1, description="1, 2, 3, ... without gaps, over the chain's records.")
    prev_hash: Sha256Hex = Field(description="The hash of record `seq - 1`; genesis for 1.")
    hash: Sha256Hex = Field(description="`record_hash` of this record.")
    chain: ChainName = Field(
        default=LEGACY_CHAIN,
        description="The chain the record is on: each writer of deliveries keeps one, so that "
        "writers never wait for each other. Not in the hash: a chain's first record follows "
        "GENESIS_HASH, and the chain itself is anchored by its opening (`opening_hash`).",
    )


_ENTRY_ORDER = tuple(AuditEntry.model_fields)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def record_hash(seq: int, prev_hash: str, entry: AuditEntry) -> str:
    """The SHA-256 (hex) of the RFC 8785 canonical JSON of `entry`, `seq` and `prev_hash`.

    `entry` may be a record already: only the entry's own fields are hashed.
    """
    document = _document(seq, prev_hash, entry)
    # ASCII keys; strings, a list of strings and `seq` as values (validated fields).
    flat = -EXACT_INT <= seq <= EXACT_INT
    text = canonical_flat(document) if flat else canonical_json(document)
    return hashlib.sha256(text).hexdigest()


def record_json(record: AuditRecord) -> bytes:
    """The record as published on `ketenbus.audit`: what `model_dump_json` writes, faster."""
    document = _document(record.seq, record.prev_hash, record)
    document["hash"] = record.hash
    document["chain"] = record.chain
    return orjson.dumps(document)


def opening_hash(seq: int, prev_hash: str, chain: str) -> str:
    """The hash of the `seq`-th chain opened, after the opening whose hash is `prev_hash`.

    The openings form a chain of their own (the first follows GENESIS_HASH): the
    SHA-256 (hex) of the RFC 8785 canonical JSON of `{"chain", "seq", "prev_hash"}`.
    A chain removed whole, head and records, leaves its opening behind.
    """
    return hashlib.sha256(
        canonical_json({"chain": chain, "seq": seq, "prev_hash": prev_hash})
    ).hexdigest()


def _document(seq: int, prev_hash: str, entry: AuditEntry) -> dict[str, str | int | list[str]]:
    # The entry's JSON as `model_dump(mode="json")` writes it, spelt out: this
    # runs once per delivery, and pydantic's dump costs more than the hashing.
    return {
        "case_id": str(entry.case_id),
        "event_id": str(entry.event_id),
        "event_type": entry.event_type,
        "receiver": entry.receiver,
        "fields": list(entry.fields),
        "purpose": entry.purpose,
        "legal_basis": entry.legal_basis,
        "delivered_at": _utc_text(entry.delivered_at),
        "seq": seq,
        "prev_hash": prev_hash,
    }


@lru_cache(maxsize=64)
def _utc_text(value: datetime) -> str:
    # Cached: the deliveries of one batch share one time. Equal instants in any
    # offset are equal keys, and write the same UTC text.
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def link(seq: int, prev_hash: str, entry: AuditEntry, chain: str = LEGACY_CHAIN) -> AuditRecord:
    """`entry` as record number `seq` of `chain`, following the record whose hash is
    `prev_hash`."""
    if not 1 <= seq <= EXACT_INT or not _SHA256_HEX.fullmatch(prev_hash):
        raise ValueError(f"no audit record links as number {seq} after {prev_hash[:80]!r}")
    values = {name: getattr(entry, name) for name in _ENTRY_ORDER}
    values["seq"] = seq
    values["prev_hash"] = prev_hash
    values["hash"] = record_hash(seq, prev_hash, entry)
    values["chain"] = chain
    # The entry is valid and the hash is this module's: nothing left to validate.
    return _trusted(AuditRecord, values)


def trusted_entry(
    *,
    case_id: UUID,
    event_id: UUID,
    event_type: str,
    receiver: str,
    fields: list[str],
    purpose: str,
    legal_basis: str,
    delivered_at: datetime,
) -> AuditEntry:
    """An AuditEntry of values the caller has validated already, not validated again.

    For the router, which builds one per delivery from a validated event and
    registry: validating them again, or `model_construct`'s search for aliases
    and defaults field by field, cost more than the record's hash. `delivered_at`
    must be aware and in UTC.
    """
    return _trusted(
        AuditEntry,
        {
            "case_id": case_id,
            "event_id": event_id,
            "event_type": event_type,
            "receiver": receiver,
            "fields": fields,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "delivered_at": delivered_at,
        },
    )


_Model = TypeVar("_Model", bound=BaseModel)


def _trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """`cls.model_construct(**values)` for `values` naming each field once, in order.

    What `model_construct` ends with, without its loop over the fields; these
    models have no defaults, aliases, extras or private attributes
    (`tests/contracts/test_audit.py` compares the two).
    """
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


BreakKind = Literal[
    "contents-changed",
    "not-linked",
    "gap",
    "out-of-order",
    "missing-at-end",
    "beyond-head",
    "head-mismatch",
]
"""How a chain is broken. `check_chain` finds the first four; a store that also
keeps the chain's head (`services.audit`) can tell the last three."""


class Broken(BaseModel):
    """Where a chain first breaks: the record (`seq`) and why, in words and as a code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    kind: BreakKind
    reason: str
    case_id: UUID | None = Field(default=None, description="The record's case, if it exists.")
    event_id: UUID | None = Field(default=None, description="The record's event, if it exists.")
    chain: str | None = Field(
        default=None, description="The chain the record is on; None: the chain of openings."
    )


def check_chain(
    records: Iterable[AuditRecord], *, start_hash: str = GENESIS_HASH, start_seq: int = 1
) -> Broken | None:
    """The first record that breaks the chain, or None when every record holds.

    `records` in `seq` order (read from the topic, sort them first), starting
    at `start_seq` after the record whose hash is `start_hash` (the defaults:
    the whole chain from the first record). A record is broken if its hash does
    not match its contents (it was changed), if it does not carry the hash of
    the record before it (one was replaced, removed or reordered), or if its
    `seq` is not the next one (records are missing, or out of order).
    """
    expected, previous = start_seq, start_hash
    for record in records:
        where = {"seq": record.seq, "case_id": record.case_id, "event_id": record.event_id}
        if record.seq > expected:
            missing = (
                f"record {expected}"
                if record.seq == expected + 1
                else f"records {expected}-{record.seq - 1}"
            )
            return Broken(**where, kind="gap", reason=f"{missing} missing before it")
        if record.seq < expected:
            return Broken(
                **where, kind="out-of-order", reason=f"out of order: record {expected} expected"
            )
        if record_hash(record.seq, record.prev_hash, record) != record.hash:
            return Broken(
                **where, kind="contents-changed", reason="contents changed since it was written"
            )
        if record.prev_hash != previous:
            before = f"record {expected - 1}" if expected > 1 else "the start of the chain"
            return Broken(
                **where,
                kind="not-linked",
                reason=f"does not follow {before}: a record was replaced, removed or reordered",
            )
        expected, previous = expected + 1, record.hash
    return None
