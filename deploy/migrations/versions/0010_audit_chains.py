"""The audit trail on one chain per writer, anchored in a chain of the chains' openings.

Every record so far was on one chain; it becomes the chain `ketenbus`, the first
opened, with its head where the one head was. The one head row then becomes the
head of the openings.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from contracts.audit import GENESIS_HASH, LEGACY_CHAIN, opening_hash

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as table:
        table.add_column(
            sa.Column(
                "chain",
                sa.String(120),
                nullable=False,
                server_default=LEGACY_CHAIN,
                comment="The writer's chain the record is on (`contracts.audit.AuditRecord.chain`).",
            )
        )
        table.drop_constraint(op.f("pk_audit_records"), type_="primary")
        table.create_primary_key(op.f("pk_audit_records"), ["chain", "seq"])
        table.alter_column(
            "seq", comment="The record's place in its chain: 1, 2, 3, ... without gaps."
        )
    chains = op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(120), nullable=False),
        sa.Column(
            "opened_seq",
            sa.BigInteger(),
            nullable=False,
            comment="Its place among the chains' openings: 1, 2, 3, ... without gaps.",
        ),
        sa.Column("opening_prev_hash", sa.String(64), nullable=False),
        sa.Column(
            "opening_hash",
            sa.String(64),
            nullable=False,
            comment="contracts.audit.opening_hash(opened_seq, opening_prev_hash, chain).",
        ),
        sa.Column("opened_at", _UTC_DATETIME, nullable=False),
        sa.Column(
            "seq", sa.BigInteger(), nullable=False, comment="The chain's last record; 0: none yet."
        ),
        sa.Column("hash", sa.String(64), nullable=False, comment="That record's hash."),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chains")),
        sa.UniqueConstraint("opened_seq", name=op.f("uq_audit_chains_opened_seq")),
    )
    head = (
        op.get_bind()
        .execute(sa.text("SELECT seq, hash FROM audit_chain_head WHERE id = 1"))
        .first()
    )
    if head is not None and head.seq > 0:
        opened = opening_hash(1, GENESIS_HASH, LEGACY_CHAIN)
        now = datetime.now(UTC)
        op.bulk_insert(
            chains,
            [
                {
                    "chain": LEGACY_CHAIN,
                    "opened_seq": 1,
                    "opening_prev_hash": GENESIS_HASH,
                    "opening_hash": opened,
                    # As the store's UtcDateTime writes it: naive on SQLite, which keeps no zone.
                    "opened_at": now
                    if op.get_bind().dialect.name != "sqlite"
                    else now.replace(tzinfo=None),
                    "seq": head.seq,
                    "hash": head.hash,
                }
            ],
        )
        op.execute(
            sa.text("UPDATE audit_chain_head SET seq = 1, hash = :h WHERE id = 1").bindparams(
                h=opened
            )
        )
    with op.batch_alter_table("audit_chain_head") as table:
        table.alter_column("seq", comment="The chains opened; 0: none yet.")
        table.alter_column("hash", comment="The last opening's hash.")


def downgrade() -> None:
    legacy = (
        op.get_bind()
        .execute(
            sa.text("SELECT seq, hash FROM audit_chains WHERE chain = :c").bindparams(
                c=LEGACY_CHAIN
            )
        )
        .first()
    )
    others = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM audit_chains WHERE chain <> :c").bindparams(
                c=LEGACY_CHAIN
            )
        )
        .scalar()
    )
    if others:
        raise RuntimeError("cannot go back to one audit chain: other chains hold records")
    seq, digest = (legacy.seq, legacy.hash) if legacy is not None else (0, GENESIS_HASH)
    op.execute(
        sa.text("UPDATE audit_chain_head SET seq = :s, hash = :h WHERE id = 1").bindparams(
            s=seq, h=digest
        )
    )
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_records") as table:
        table.drop_constraint(op.f("pk_audit_records"), type_="primary")
        table.create_primary_key(op.f("pk_audit_records"), ["seq"])
        table.drop_column("chain")
