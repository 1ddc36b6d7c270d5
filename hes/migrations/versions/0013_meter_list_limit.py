"""A meter's GET-with-list limit, learned from its answers.

Real meters cap how many attributes one GET-with-list may ask for (gurux-dlms's meter server answers
an 11-item list with 8 results). A session that meets a short or refused answer asks again in smaller
parts and learns the limit; this column keeps it, so that the meter's next session starts with lists
it answers whole instead of learning again. NULL: nothing learned (the device type's limit applies).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meters") as batch:
        batch.add_column(sa.Column("max_get_with_list", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meters") as batch:
        batch.drop_column("max_get_with_list")
