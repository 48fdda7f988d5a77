"""The tracker's case store: cases and their timeline.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out rather than generated from `services.runtime.store.tables`, so the history
stays what it was when the tables change; tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENCY = 32


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(48), nullable=False),
        sa.Column(
            "holder", sa.String(AGENCY), nullable=False, comment="The agency that holds the case."
        ),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("pending_handoff_id", sa.Uuid(), nullable=True),
        sa.Column("pending_from", sa.String(AGENCY), nullable=True),
        sa.Column("pending_to", sa.String(AGENCY), nullable=True),
        sa.Column("pending_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "bounce_count",
            sa.Integer(),
            nullable=False,
            comment="Handoffs of this case that were rejected (ping-pong).",
        ),
        sa.Column(
            "opened_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="The case-opened event's time.",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the tracker last wrote it.",
        ),
        sa.Column(
            "last_event_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="The latest time of an event applied to the case (idle detection).",
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_cases_status")),
        sa.CheckConstraint(
            "(pending_handoff_id IS NULL) = (pending_to IS NULL)",
            name=op.f("ck_cases_pending_complete"),
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_last_event_at"), "cases", ["last_event_at"])

    op.create_table(
        "case_timeline",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column(
            "time", sa.DateTime(timezone=True), nullable=False, comment="The event's own `time`."
        ),
        sa.Column(
            "event_type",
            sa.String(64),
            nullable=False,
            comment="The event name: handoff-accepted.",
        ),
        sa.Column(
            "agency",
            sa.String(AGENCY),
            nullable=True,
            comment="The emitter; NULL: unknown source.",
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column(
            "summary", sa.String(300), nullable=False, comment="Built from codes and ids only."
        ),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column(
            "refusal", sa.Text(), nullable=True, comment="Why the event was not applied."
        ),
        sa.Column("handoff_id", sa.Uuid(), nullable=True),
        sa.Column("escalation_id", sa.Uuid(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=True),
        sa.Column("escalation_trigger", sa.String(32), nullable=True),
        sa.Column("escalation_outcome", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_timeline")),
        sa.UniqueConstraint("event_id", name=op.f("uq_case_timeline_event_id")),
    )
    op.create_index(op.f("ix_case_timeline_case_id"), "case_timeline", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_timeline_case_id"), table_name="case_timeline")
    op.drop_table("case_timeline")
    op.drop_index(op.f("ix_cases_last_event_at"), table_name="cases")
    op.drop_table("cases")
