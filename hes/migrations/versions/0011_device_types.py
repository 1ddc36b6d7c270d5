"""Device types added by engineers (``hes devicetype add``): the file as given, who added it, when.

The shipped types live in the package (``hes/devicetypes/*.json``); added ones in this table, so
every worker sharing the database sees them. An added type of a shipped type's name replaces it.
``model_objects`` (objects declared per make and model for the plans' support check) goes: a
device type says that and more; a declaration kept there must be written as a device type file.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_types",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", hes.db.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_device_types"),
    )
    op.drop_table("model_objects")


def downgrade() -> None:
    op.create_table(
        "model_objects",
        sa.Column("make", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("updated_at", hes.db.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("make", "model", name="pk_model_objects"),
    )
    op.drop_table("device_types")
