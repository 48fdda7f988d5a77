"""The HTTP gateway: agencies' bearer tokens and the events it accepted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_tokens",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column("label", sa.String(80), nullable=True, comment="What the token is for; no secret."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_gateway_tokens")),
    )
    op.create_index(op.f("ix_gateway_tokens_agency"), "gateway_tokens", ["agency"])
    op.create_table(
        "gateway_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.String(32), nullable=False),
        sa.Column(
            "digest", sa.String(64), nullable=False, comment="sha256 of the event as taken."
        ),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_gateway_events")),
    )
    op.create_index(op.f("ix_gateway_events_accepted_at"), "gateway_events", ["accepted_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_events_accepted_at"), table_name="gateway_events")
    op.drop_table("gateway_events")
    op.drop_index(op.f("ix_gateway_tokens_agency"), table_name="gateway_tokens")
    op.drop_table("gateway_tokens")
