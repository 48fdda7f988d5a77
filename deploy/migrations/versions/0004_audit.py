"""The audit trail: hash-chained delivery records and the chain's head (at genesis).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENCY = 32
SHA256_HEX = 64
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="The record's place in the chain: 1, 2, 3, ... without gaps.",
        ),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False, comment="The event delivered."),
        sa.Column(
            "event_type",
            sa.String(64),
            nullable=False,
            comment="The event name: handoff-requested.",
        ),
        sa.Column(
            "receiver",
            sa.String(AGENCY),
            nullable=False,
            comment="The agency it was delivered to.",
        ),
        sa.Column(
            "fields", sa.JSON(), nullable=False, comment="Names of the context fields delivered."
        ),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(SHA256_HEX), nullable=False),
        sa.Column("hash", sa.String(SHA256_HEX), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    op.create_index(op.f("ix_audit_records_case_id"), "audit_records", ["case_id"])

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger(),
            nullable=False,
            comment="The last record written; 0: none yet.",
        ),
        sa.Column("hash", sa.String(SHA256_HEX), nullable=False, comment="That record's hash."),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_index(op.f("ix_audit_records_case_id"), table_name="audit_records")
    op.drop_table("audit_records")
