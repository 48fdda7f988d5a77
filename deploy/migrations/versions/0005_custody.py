"""The router's custody of cases (holder rights) and the event ids it delivered.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENCY = 32


def upgrade() -> None:
    op.create_table(
        "case_custody",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(48), nullable=False),
        sa.Column("holder", sa.String(AGENCY), nullable=False),
        sa.Column(
            "holders", sa.JSON(), nullable=False, comment="Every agency that has held the case."
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pending_handoff_id", sa.Uuid(), nullable=True),
        sa.Column("pending_from", sa.String(AGENCY), nullable=True),
        sa.Column("pending_to", sa.String(AGENCY), nullable=True),
        sa.Column("pending_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bounce_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_custody")),
    )
    op.create_table(
        "router_seen_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "topic", sa.String(255), nullable=False, comment="The outbox it was read from."
        ),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_router_seen_events")),
    )
    op.create_index(op.f("ix_router_seen_events_seen_at"), "router_seen_events", ["seen_at"])
    # Cases the tracker knows from before custody existed: their holder so far is the
    # only one the store can name.
    holders = "json_build_array(holder)" if op.get_bind().dialect.name == "postgresql" else (
        "json_array(holder)"
    )
    op.execute(
        "INSERT INTO case_custody (case_id, category, holder, holders, status, "
        "pending_handoff_id, pending_from, pending_to, pending_deadline, bounce_count, "
        f"opened_at, last_event_at) SELECT case_id, category, holder, {holders}, status, "
        "pending_handoff_id, pending_from, pending_to, pending_deadline, bounce_count, "
        "opened_at, last_event_at FROM cases"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_router_seen_events_seen_at"), table_name="router_seen_events")
    op.drop_table("router_seen_events")
    op.drop_table("case_custody")
