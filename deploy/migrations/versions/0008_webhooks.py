"""Webhook delivery: agencies' subscriptions, each delivery and each attempt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column(
            "authorization",
            sa.Text(),
            nullable=True,
            comment="The Authorization header each delivery carries: the receiver's credential.",
        ),
        sa.Column(
            "signing_secret", sa.String(80), nullable=False, comment="Standard Webhooks whsec_."
        ),
        sa.Column(
            "event_types", sa.JSON(), nullable=False, comment="Event names delivered; []: all."
        ),
        sa.Column("purpose", sa.String(200), nullable=True),
        sa.Column("legal_basis", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(300), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'ended')", name=op.f("ck_webhook_subscriptions_status")
        ),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(
        op.f("ix_webhook_subscriptions_agency"), "webhook_subscriptions", ["agency"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column(
            "body",
            sa.Text(),
            nullable=False,
            comment="The inbox copy, as the router minimised it.",
        ),
        sa.Column(
            "origin_partition",
            sa.Integer(),
            nullable=False,
            comment="Where it was read in the inbox.",
        ),
        sa.Column("origin_offset", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "retry_from",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Start of the retry horizon.",
        ),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "claimed_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Its lease, in real time.",
        ),
        sa.Column(
            "last_status", sa.Integer(), nullable=True, comment="The last answer's HTTP status."
        ),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead', 'dropped')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "subscription_id", "event_id", name=op.f("uq_webhook_deliveries_subscription_id")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_open", "webhook_deliveries", ["subscription_id", "case_id", "id"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status", sa.Integer(), nullable=True, comment="HTTP status; NULL: no answer."
        ),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", "attempt", name=op.f("pk_webhook_attempts")),
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_open", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_webhook_subscriptions_agency"), table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
