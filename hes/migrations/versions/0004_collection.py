"""N2PLoad: per-meter profile watermarks, gap tracking, collection results (issue 5).

Revision ID: 0004
Revises: 0003

The tables of ``scheduler.collection_models``: ``collection_watermarks``, ``collection_gaps``,
``meter_collection``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_watermarks",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("profile_obis", sa.String(length=24), nullable=False),
        sa.Column("collected_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=True),
        sa.Column("shape", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_collection_watermarks_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", "profile_obis", name=op.f("pk_collection_watermarks")),
    )
    op.create_table(
        "collection_gaps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("profile_obis", sa.String(length=24), nullable=False),
        sa.Column("first_missing", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_missing", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_collection_gaps_meter_id_meters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_gaps")),
        sa.UniqueConstraint("meter_id", "profile_obis", "first_missing", name="uq_collection_gaps_start"),
    )
    op.create_index("ix_collection_gaps_meter_state", "collection_gaps", ["meter_id", "state"])
    op.create_table(
        "meter_collection",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("last_contact", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unreachable_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_meter_collection_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meter_collection")),
    )


def downgrade() -> None:
    op.drop_table("meter_collection")
    op.drop_index("ix_collection_gaps_meter_state", table_name="collection_gaps")
    op.drop_table("collection_gaps")
    op.drop_table("collection_watermarks")
