"""When a round's expiry reached Kafka, so the case-log consumer does not raise it again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "escalation_timers",
        sa.Column(
            "produced_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When Kafka took the expiry a round produced for it; fired_at follows.",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("escalation_timers") as batch:
        batch.drop_column("produced_at")
