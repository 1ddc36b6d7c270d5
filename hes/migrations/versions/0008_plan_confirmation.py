"""Plans: who confirmed a bulk disconnect, when, and for how many meters (issue 7, relay commands in plans).

Three nullable columns on ``plans`` (``scheduler.models.Plan``); a plan that disconnects no more than
one meter, or does not disconnect, leaves them empty.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("disconnect_confirmed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("disconnect_confirmed_at", hes.db.models.UtcDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("disconnect_confirmed_meters", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("disconnect_confirmed_meters")
        batch.drop_column("disconnect_confirmed_at")
        batch.drop_column("disconnect_confirmed_by")
