"""Concentrators remember when the head-end last tried to reach them, so a failure can be rechecked.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("concentrators") as batch:
        batch.add_column(sa.Column("last_attempt", hes.db.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("concentrators") as batch:
        batch.drop_column("last_attempt")
