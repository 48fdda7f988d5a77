"""The store's tables: the tracker's cases and timeline, the escalation service's own state.

One `MetaData` for the whole store, so Alembic can compare it with the migrations.
The types are portable between SQLite (development, tests) and PostgreSQL
(production): `Uuid` is native on PostgreSQL and CHAR(32) on SQLite, and every
time is kept in UTC (see `UtcDateTime`). Nothing here holds personal data: the
timeline stores codes, ids and a summary built from them, never free text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

AGENCY = 32
"""Room for an agency code (`[a-z][a-z0-9]{1,31}`) or the operator's name."""


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored in UTC and read back aware on every backend.

    SQLite has no time zone type: SQLAlchemy drops the offset and reads back a
    naive value. Converting to UTC on the way in and attaching UTC on the way out
    gives the same aware values on SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps aware datetimes only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


cases = Table(
    "cases",
    metadata,
    Column("case_id", Uuid(), primary_key=True),
    Column("category", String(48), nullable=False),
    Column("holder", String(AGENCY), nullable=False, comment="The agency that holds the case."),
    Column("status", String(8), nullable=False),
    Column("pending_handoff_id", Uuid(), nullable=True),
    Column("pending_from", String(AGENCY), nullable=True),
    Column("pending_to", String(AGENCY), nullable=True),
    Column("pending_deadline", UtcDateTime(), nullable=True),
    Column(
        "bounce_count",
        Integer,
        nullable=False,
        comment="Handoffs of this case that were rejected (ping-pong).",
    ),
    Column("opened_at", UtcDateTime(), nullable=False, comment="The case-opened event's time."),
    Column("updated_at", UtcDateTime(), nullable=False, comment="When the tracker last wrote it."),
    Column(
        "last_event_at",
        UtcDateTime(),
        nullable=False,
        comment="The latest time of an event applied to the case (idle detection).",
    ),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
    CheckConstraint("(pending_handoff_id IS NULL) = (pending_to IS NULL)", name="pending_complete"),
    Index(None, "last_event_at"),
)
"""One row per case: who holds it, whether it is open, the handoff in flight."""

case_timeline = Table(
    "case_timeline",
    metadata,
    # Integer on SQLite so the column is the rowid and numbers itself.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("event_id", Uuid(), nullable=False, unique=True),
    Column("case_id", Uuid(), nullable=False, index=True),
    Column("time", UtcDateTime(), nullable=False, comment="The event's own `time`."),
    Column("event_type", String(64), nullable=False, comment="The event name: handoff-accepted."),
    Column("agency", String(AGENCY), nullable=True, comment="The emitter; NULL: unknown source."),
    Column("sequence", Integer, nullable=False),
    Column("summary", String(300), nullable=False, comment="Built from codes and ids only."),
    Column("applied", Boolean(), nullable=False),
    Column("refusal", Text, nullable=True, comment="Why the event was not applied."),
    Column("handoff_id", Uuid(), nullable=True),
    Column("escalation_id", Uuid(), nullable=True),
    Column("escalation_level", Integer, nullable=True),
    Column("escalation_trigger", String(32), nullable=True),
    Column("escalation_outcome", String(32), nullable=True),
    Column("rule_reference", String(200), nullable=True, comment="Law or rule an agency cited."),
    Column("agency_pair", String(2 * AGENCY + 1), nullable=True, comment="`from>to` of a stall."),
)
"""One row per event seen on `ketenbus.cases`, applied or refused, in the order
the tracker met them (`id`). No foreign key to `cases`: an event for an unknown
case is recorded too, as a refusal."""


# The escalation service's own state. It keeps its own view of each case (the
# tracker's tables belong to the tracker) so the two services never write the
# same rows; both follow the same case log.

TEAM = 48
"""Room for a team code (`[a-z][a-z0-9-]{1,47}`)."""

ESCALATION_TRIGGERS = ("handoff-expired", "idle", "ping-pong", "hardship", "manual")
ESCALATION_STATUSES = ("raised", "acknowledged", "resolved", "withdrawn")
TIMER_KINDS = ("handoff-deadline", "idle", "acknowledge", "top-repeat")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


escalation_cases = Table(
    "escalation_cases",
    metadata,
    Column("case_id", Uuid(), primary_key=True),
    Column("category", String(48), nullable=False),
    Column("holder", String(AGENCY), nullable=False),
    Column("holders", JSON(), nullable=False, comment="Every agency that has held the case."),
    Column("status", String(8), nullable=False),
    Column("pending_handoff_id", Uuid(), nullable=True),
    Column("pending_from", String(AGENCY), nullable=True),
    Column("pending_to", String(AGENCY), nullable=True),
    Column("pending_deadline", UtcDateTime(), nullable=True),
    Column("rejections", Integer, nullable=False, comment="Handoffs of the case rejected."),
    Column(
        "rejections_escalated",
        Integer,
        nullable=False,
        comment="Rejections counted when ping-pong was last escalated.",
    ),
    Column(
        "escalation_path",
        JSON(),
        nullable=True,
        comment="The case's own path (wire JSON); NULL: the category's default.",
    ),
    Column("correlation_id", Uuid(), nullable=False, comment="The case chain."),
    Column("sequence", Integer, nullable=False, comment="The last sequence the service used."),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column(
        "last_event_at",
        UtcDateTime(),
        nullable=False,
        comment="The latest time of an agency's event on the case (idle detection).",
    ),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
)
"""The escalation service's view of each case: holder, handoff in flight, bounces, path."""

escalations = Table(
    "escalations",
    metadata,
    Column("escalation_id", Uuid(), primary_key=True),
    Column("case_id", Uuid(), nullable=False, index=True),
    Column("trigger", String(16), nullable=False),
    Column("cause", String(300), nullable=False, comment="Built from codes, never free text."),
    Column("rule_reference", String(200), nullable=True),
    Column("agency_pair", String(2 * AGENCY + 1), nullable=True, comment="`from>to` of a stall."),
    Column("flag_kind", String(16), nullable=True, comment="hardship or vulnerability, if any."),
    Column("level", Integer, nullable=False, comment="The level alerted last."),
    Column("team_agency", String(AGENCY), nullable=False),
    Column("team", String(TEAM), nullable=False),
    Column("status", String(12), nullable=False),
    Column("raised_at", UtcDateTime(), nullable=False, comment="When it was first raised."),
    Column("alerted_at", UtcDateTime(), nullable=False, comment="When `level` was alerted."),
    Column("acknowledge_by", UtcDateTime(), nullable=False),
    Column("raises", Integer, nullable=False, comment="escalation-raised events sent for it."),
    Column("last_raised_id", Uuid(), nullable=False, comment="The latest escalation-raised."),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("outcome", String(32), nullable=True),
    CheckConstraint(_one_of("trigger", ESCALATION_TRIGGERS), name="trigger"),
    CheckConstraint(_one_of("status", ESCALATION_STATUSES), name="status"),
)
"""One row per escalation: its cause, the level and team alerted, and how it ended.
`withdrawn`: the case was closed before the escalation was resolved."""

escalation_timers = Table(
    "escalation_timers",
    metadata,
    Column("id", Uuid(), nullable=False, comment="Derived from kind, ref and due_at."),
    Column("case_id", Uuid(), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column(
        "ref",
        Uuid(),
        nullable=False,
        comment="The handoff (handoff-deadline), case (idle) or escalation it is for.",
    ),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("causation_id", Uuid(), nullable=True, comment="The event that set the timer."),
    Column("claimed_by", String(64), nullable=True, comment="The instance firing it."),
    Column("claimed_until", UtcDateTime(), nullable=True, comment="Its lease, in real time."),
    Column(
        "produced_at",
        UtcDateTime(),
        nullable=True,
        comment="When Kafka took the expiry a round produced for it; fired_at follows.",
    ),
    Column("fired_at", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("ref", "kind", "due_at"),
    CheckConstraint(_one_of("kind", TIMER_KINDS), name="kind"),
    Index(
        "ix_escalation_timers_unfired_due",
        "due_at",
        sqlite_where=text("fired_at IS NULL"),
        postgresql_where=text("fired_at IS NULL"),
    ),
)
"""Durable deadlines. A timer is set at most once (the unique rule), claimed by
one instance at a time (a lease), and fired once (`fired_at`). The partial
index holds the unfired timers only, so finding the due ones stays cheap
however many have fired."""

escalation_seen_events = Table(
    "escalation_seen_events",
    metadata,
    Column("event_id", Uuid(), primary_key=True),
)
"""Every case-log event id the escalation service has applied (idempotency)."""


# The audit trail (`services.audit`): one row per delivery to an agency's inbox,
# hash-chained on its writer's chain; each chain's head; the head of the chains'
# openings. Field names only, never the fields' values.

SHA256_HEX = 64
"""A SHA-256 digest in lowercase hex."""

CHAIN_NAME = 120

audit_records = Table(
    "audit_records",
    metadata,
    Column(
        "chain",
        String(CHAIN_NAME),
        primary_key=True,
        server_default="ketenbus",
        comment="The writer's chain the record is on (`contracts.audit.AuditRecord.chain`).",
    ),
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
        comment="The record's place in its chain: 1, 2, 3, ... without gaps.",
    ),
    Column("case_id", Uuid(), nullable=False, index=True),
    Column("event_id", Uuid(), nullable=False, comment="The event delivered."),
    Column("event_type", String(64), nullable=False, comment="The event name: handoff-requested."),
    Column("receiver", String(AGENCY), nullable=False, comment="The agency it was delivered to."),
    Column("fields", JSON(), nullable=False, comment="Names of the context fields delivered."),
    Column("purpose", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=False),
    Column("prev_hash", String(SHA256_HEX), nullable=False),
    Column("hash", String(SHA256_HEX), nullable=False),
)
"""The audit trail, append-only: each row's `hash` covers its contents and `prev_hash`."""

audit_chains = Table(
    "audit_chains",
    metadata,
    Column("chain", String(CHAIN_NAME), primary_key=True),
    Column(
        "opened_seq",
        BigInteger,
        nullable=False,
        unique=True,
        comment="Its place among the chains' openings: 1, 2, 3, ... without gaps.",
    ),
    Column("opening_prev_hash", String(SHA256_HEX), nullable=False),
    Column(
        "opening_hash",
        String(SHA256_HEX),
        nullable=False,
        comment="contracts.audit.opening_hash(opened_seq, opening_prev_hash, chain).",
    ),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("seq", BigInteger, nullable=False, comment="The chain's last record; 0: none yet."),
    Column("hash", String(SHA256_HEX), nullable=False, comment="That record's hash."),
)
"""One row per chain, its head: appends to a chain lock its row, so it never forks, and
`verify` compares it with the chain's last record, so removing records at the end shows."""

audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False, comment="The chains opened; 0: none yet."),
    Column("hash", String(SHA256_HEX), nullable=False, comment="The last opening's hash."),
    CheckConstraint("id = 1", name="one_row"),
)
"""One row (id 1): where the chain of openings ends. Opening a chain (once per writer
process) locks it; `verify` compares it with the last opening, so a chain removed whole,
head and records, shows."""


# The router's custody of cases (`services.router`): who holds each case, which
# handoff is pending, who has held it. Every writer of a state-changing event to
# the case log (the router, and the escalation service for an expiry) locks the
# case's row while it produces, so the checks and the log's order agree.

case_custody = Table(
    "case_custody",
    metadata,
    Column("case_id", Uuid(), primary_key=True),
    Column("category", String(48), nullable=False),
    Column("holder", String(AGENCY), nullable=False),
    Column("holders", JSON(), nullable=False, comment="Every agency that has held the case."),
    Column("status", String(16), nullable=False),
    Column("pending_handoff_id", Uuid(), nullable=True),
    Column("pending_from", String(AGENCY), nullable=True),
    Column("pending_to", String(AGENCY), nullable=True),
    Column("pending_deadline", UtcDateTime(), nullable=True),
    Column("bounce_count", Integer, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
)
"""The router's view of each case: what holder rights are checked against."""

router_seen_events = Table(
    "router_seen_events",
    metadata,
    Column("event_id", Uuid(), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False, index=True),
    Column("topic", String(255), nullable=False, comment="The outbox it was read from."),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
)
"""Every event id the router has delivered, and where it read it: the same id again is
delivered once; the same record again (a batch redelivered) is skipped without a word."""


# The HTTP gateway (`services.gateway`): who may send over HTTP, and what it took.

gateway_tokens = Table(
    "gateway_tokens",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("agency", String(AGENCY), nullable=False, index=True),
    Column("label", String(80), nullable=True, comment="What the token is for; no secret."),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
"""An agency's bearer tokens for the gateway, by their sha256: the token itself is
shown once, when `ketenbus gateway token new` makes it, and kept nowhere."""

gateway_events = Table(
    "gateway_events",
    metadata,
    Column("event_id", Uuid(), primary_key=True),
    Column("agency", String(AGENCY), nullable=False),
    Column("digest", String(64), nullable=False, comment="sha256 of the event as taken."),
    Column("accepted_at", UtcDateTime(), nullable=False, index=True),
)
"""Every event the gateway handed to Kafka (acknowledged by every in-sync replica):
the same id again is answered as accepted without being sent twice."""

SUBSCRIPTION_STATUSES = ("active", "ended")
DELIVERY_FORMATS = ("cloudevents", "notificaties")
DELIVERY_STATUSES = ("pending", "delivered", "dead", "dropped")
PENDING = text("status = 'pending'")
"""The condition of the pending deliveries' indexes; a query that is to use them says it
in these words, not with a bound parameter (a generic plan cannot use a partial index)."""

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("subscription_id", Uuid(), primary_key=True),
    Column("agency", String(AGENCY), nullable=False, index=True),
    Column("callback_url", Text(), nullable=False),
    Column(
        "authorization",
        Text(),
        nullable=True,
        comment="The Authorization header each delivery carries: the receiver's credential.",
    ),
    Column("signing_secret", String(80), nullable=False, comment="Standard Webhooks whsec_."),
    Column("event_types", JSON(), nullable=False, comment="Event names delivered; []: all."),
    Column("purpose", String(200), nullable=True),
    Column("legal_basis", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("end_reason", String(300), nullable=True),
    Column(
        "delivery_format",
        String(16),
        nullable=False,
        server_default="cloudevents",
        comment="cloudevents: the event in structured mode; notificaties: a ZGW message.",
    ),
    Column(
        "channels",
        JSON(),
        nullable=False,
        server_default="[]",
        comment="Notificaties kanalen delivered (the bus's own events: ketenbus); []: all.",
    ),
    CheckConstraint(_one_of("status", SUBSCRIPTION_STATUSES), name="status"),
    CheckConstraint(_one_of("delivery_format", DELIVERY_FORMATS), name="delivery_format"),
)
"""An agency's webhook: where the gateway POSTs what arrives in its inbox."""

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # Integer on SQLite so the column is the rowid and numbers itself: the inbox's order.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("subscription_id", Uuid(), nullable=False),
    Column("event_id", Uuid(), nullable=False),
    Column("case_id", Uuid(), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", Text(), nullable=False, comment="The inbox copy, as the router minimised it."),
    Column("origin_partition", Integer, nullable=False, comment="Where it was read in the inbox."),
    Column("origin_offset", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retry_from", UtcDateTime(), nullable=False, comment="Start of the retry horizon."),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("claimed_until", UtcDateTime(), nullable=True, comment="Its lease, in real time."),
    Column("last_status", Integer, nullable=True, comment="The last answer's HTTP status."),
    Column("last_error", String(300), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    UniqueConstraint("subscription_id", "event_id"),
    CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
    Index("ix_webhook_deliveries_open", "subscription_id", "case_id", "id"),
    # The pending ones only, so a round's claim reads them in due order and checks each is
    # its case's oldest pending without sorting or scanning a backlog (docs/gateway.md).
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        "id",
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    ),
    Index(
        "ix_webhook_deliveries_pending_case",
        "subscription_id",
        "case_id",
        "id",
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    ),
)
"""One event to one subscription: pending until the receiver answers 2xx, dead after
the horizon, dropped when its subscription ended. Held in case order per case."""

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", BigInteger(), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("status", Integer, nullable=True, comment="HTTP status; NULL: no answer."),
    Column("error", String(300), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("delivery_id", "attempt"),
)
"""Every attempt of a delivery: when, what the receiver answered, how long it took."""
