"""The escalation service's store: its view of cases, escalations, durable timers, seen events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENCY = 32
TEAM = 48


def upgrade() -> None:
    op.create_table(
        "escalation_cases",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(48), nullable=False),
        sa.Column("holder", sa.String(AGENCY), nullable=False),
        sa.Column(
            "holders", sa.JSON(), nullable=False, comment="Every agency that has held the case."
        ),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("pending_handoff_id", sa.Uuid(), nullable=True),
        sa.Column("pending_from", sa.String(AGENCY), nullable=True),
        sa.Column("pending_to", sa.String(AGENCY), nullable=True),
        sa.Column("pending_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "rejections", sa.Integer(), nullable=False, comment="Handoffs of the case rejected."
        ),
        sa.Column(
            "rejections_escalated",
            sa.Integer(),
            nullable=False,
            comment="Rejections counted when ping-pong was last escalated.",
        ),
        sa.Column(
            "escalation_path",
            sa.JSON(),
            nullable=True,
            comment="The case's own path (wire JSON); NULL: the category's default.",
        ),
        sa.Column("correlation_id", sa.Uuid(), nullable=False, comment="The case chain."),
        sa.Column(
            "sequence",
            sa.Integer(),
            nullable=False,
            comment="The last sequence the service used.",
        ),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_event_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="The latest time of an agency's event on the case (idle detection).",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'closed')", name=op.f("ck_escalation_cases_status")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_escalation_cases")),
    )

    op.create_table(
        "escalations",
        sa.Column("escalation_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column(
            "cause", sa.String(300), nullable=False, comment="Built from codes, never free text."
        ),
        sa.Column("rule_reference", sa.String(200), nullable=True),
        sa.Column(
            "agency_pair",
            sa.String(2 * AGENCY + 1),
            nullable=True,
            comment="`from>to` of a stall.",
        ),
        sa.Column(
            "flag_kind",
            sa.String(16),
            nullable=True,
            comment="hardship or vulnerability, if any.",
        ),
        sa.Column("level", sa.Integer(), nullable=False, comment="The level alerted last."),
        sa.Column("team_agency", sa.String(AGENCY), nullable=False),
        sa.Column("team", sa.String(TEAM), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column(
            "raised_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When it was first raised.",
        ),
        sa.Column(
            "alerted_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When `level` was alerted.",
        ),
        sa.Column("acknowledge_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "raises",
            sa.Integer(),
            nullable=False,
            comment="escalation-raised events sent for it.",
        ),
        sa.Column(
            "last_raised_id", sa.Uuid(), nullable=False, comment="The latest escalation-raised."
        ),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.CheckConstraint(
            "trigger IN ('handoff-expired', 'idle', 'ping-pong', 'hardship', 'manual')",
            name=op.f("ck_escalations_trigger"),
        ),
        sa.CheckConstraint(
            "status IN ('raised', 'acknowledged', 'resolved', 'withdrawn')",
            name=op.f("ck_escalations_status"),
        ),
        sa.PrimaryKeyConstraint("escalation_id", name=op.f("pk_escalations")),
    )
    op.create_index(op.f("ix_escalations_case_id"), "escalations", ["case_id"])

    op.create_table(
        "escalation_timers",
        sa.Column("id", sa.Uuid(), nullable=False, comment="Derived from kind, ref and due_at."),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "ref",
            sa.Uuid(),
            nullable=False,
            comment="The handoff (handoff-deadline), case (idle) or escalation it is for.",
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "causation_id", sa.Uuid(), nullable=True, comment="The event that set the timer."
        ),
        sa.Column(
            "claimed_by", sa.String(64), nullable=True, comment="The instance firing it."
        ),
        sa.Column(
            "claimed_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Its lease, in real time.",
        ),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('handoff-deadline', 'idle', 'acknowledge', 'top-repeat')",
            name=op.f("ck_escalation_timers_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_timers")),
        sa.UniqueConstraint("ref", "kind", "due_at", name=op.f("uq_escalation_timers_ref")),
    )
    op.create_index(op.f("ix_escalation_timers_case_id"), "escalation_timers", ["case_id"])
    op.create_index(
        "ix_escalation_timers_unfired_due",
        "escalation_timers",
        ["due_at"],
        sqlite_where=sa.text("fired_at IS NULL"),
        postgresql_where=sa.text("fired_at IS NULL"),
    )

    op.create_table(
        "escalation_seen_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_escalation_seen_events")),
    )


def downgrade() -> None:
    op.drop_table("escalation_seen_events")
    op.drop_index("ix_escalation_timers_unfired_due", table_name="escalation_timers")
    op.drop_index(op.f("ix_escalation_timers_case_id"), table_name="escalation_timers")
    op.drop_table("escalation_timers")
    op.drop_index(op.f("ix_escalations_case_id"), table_name="escalations")
    op.drop_table("escalations")
    op.drop_table("escalation_cases")
