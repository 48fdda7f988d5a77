"""Policy signals: the law or rule cited, and the agency pair, on the timeline.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENCY = 32


def upgrade() -> None:
    with op.batch_alter_table("case_timeline") as table:
        table.add_column(
            sa.Column(
                "rule_reference",
                sa.String(200),
                nullable=True,
                comment="Law or rule an agency cited.",
            )
        )
        table.add_column(
            sa.Column(
                "agency_pair",
                sa.String(2 * AGENCY + 1),
                nullable=True,
                comment="`from>to` of a stall.",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("case_timeline") as table:
        table.drop_column("agency_pair")
        table.drop_column("rule_reference")
