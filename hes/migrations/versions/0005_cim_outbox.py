"""CIM integration: the outbox of IEC 61968-9 messages and their delivery state (issue 6).

The table is ``cim.models.OutboxMessage``; the legacy integration database has its own schema,
made by the delivery worker (``cim.legacy``), not by these migrations.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, hes.db.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cim_outbox",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("noun", sa.String(32), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("set_id", sa.String(64), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("meters", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("created_at", False),
        _time("next_attempt_at", False),
        _time("lease_until"),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        _time("delivered_at"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_cim_outbox")),
        sa.CheckConstraint(
            "state IN ('PENDING', 'DELIVERED', 'FAILED', 'DISCARDED')", name=op.f("ck_cim_outbox_state")
        ),
    )
    op.create_index("ix_cim_outbox_due", "cim_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_cim_outbox_created", "cim_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_cim_outbox_created", table_name="cim_outbox")
    op.drop_index("ix_cim_outbox_due", table_name="cim_outbox")
    op.drop_table("cim_outbox")
