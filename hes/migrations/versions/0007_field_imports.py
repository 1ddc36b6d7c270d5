"""Field tool: imported optical-probe bundles (issue 8).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _time() -> hes.db.models.UtcDateTime:
    return hes.db.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "field_key_exports",
        sa.Column("export_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("bundle_key_enc", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("export_id", name=op.f("pk_field_key_exports")),
    )
    op.create_table(
        "field_imports",
        sa.Column("bundle_id", sa.String(length=36), nullable=False),
        sa.Column("export_id", sa.String(length=36), nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("read_started_at", _time(), nullable=False),
        sa.Column("read_finished_at", _time(), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("imported_at", _time(), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("registers", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("new_intervals", sa.Integer(), nullable=False),
        sa.Column("new_registers", sa.Integer(), nullable=False),
        sa.Column("new_events", sa.Integer(), nullable=False),
        sa.Column("concentrator_events", sa.Integer(), nullable=False),
        sa.Column("new_concentrator_events", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["export_id"], ["field_key_exports.export_id"],
                                name=op.f("fk_field_imports_export_id_field_key_exports")),
        sa.PrimaryKeyConstraint("bundle_id", name=op.f("pk_field_imports")),
    )
    op.create_index("ix_field_imports_device", "field_imports", ["device_id", "imported_at"])


def downgrade() -> None:
    op.drop_index("ix_field_imports_device", table_name="field_imports")
    op.drop_table("field_imports")
    op.drop_table("field_key_exports")
