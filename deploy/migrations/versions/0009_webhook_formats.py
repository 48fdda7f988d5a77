"""Webhook subscriptions: the delivery format and a filter on Notificaties channels.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.add_column(
            sa.Column(
                "delivery_format",
                sa.String(16),
                nullable=False,
                server_default="cloudevents",
                comment="cloudevents: the event in structured mode; notificaties: a ZGW message.",
            )
        )
        table.add_column(
            sa.Column(
                "channels",
                sa.JSON(),
                nullable=False,
                server_default="[]",
                comment="Notificaties kanalen delivered (the bus's own events: ketenbus); []: all.",
            )
        )
        table.create_check_constraint(
            op.f("ck_webhook_subscriptions_delivery_format"),
            "delivery_format IN ('cloudevents', 'notificaties')",
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.drop_constraint(op.f("ck_webhook_subscriptions_delivery_format"), type_="check")
        table.drop_column("channels")
        table.drop_column("delivery_format")
