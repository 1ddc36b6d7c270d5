"""The concentrator as a model: its medium, deadline, session budget, outage start, clock, and its meter table.

``concentrators`` gets what the head-end's model of a DC (``concentrator/``) keeps: the DC's network
towards its meters (``medium``, plc or rf), its own response deadline for exchanges through it and
its own session budget (both null: the defaults), since when it is unreachable, what its clock read
last (when, and how far off) and when its meter table was last reconciled. ``meters`` gets the
``discovered`` state (found in a DC's table, not commissioned until its keys are given), since when
its DC's table no longer lists it, its firmware and its device type.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_STATES = "state IN ('installed', 'discovered', 'commissioned', 'decommissioned')"
_OLD_STATES = "state IN ('installed', 'commissioned', 'decommissioned')"


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, hes.db.models.UtcDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("concentrators") as batch:
        batch.add_column(sa.Column("medium", sa.String(8), nullable=False, server_default="plc"))
        batch.add_column(sa.Column("response_deadline_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_sessions", sa.Integer(), nullable=True))
        batch.add_column(_time("unreachable_since"))
        batch.add_column(_time("clock_checked_at"))
        batch.add_column(sa.Column("clock_deviation_s", sa.Float(), nullable=True))
        batch.add_column(_time("table_synced_at"))
        batch.create_check_constraint("medium", "medium IN ('plc', 'rf')")
    with op.batch_alter_table("meters") as batch:
        batch.add_column(_time("missing_since"))
        batch.add_column(sa.Column("firmware", sa.String(32), nullable=True))
        batch.add_column(sa.Column("device_type", sa.String(64), nullable=True))
        batch.drop_constraint("state", type_="check")
        batch.create_check_constraint("state", _STATES)


def downgrade() -> None:
    with op.batch_alter_table("meters") as batch:
        batch.drop_constraint("state", type_="check")
        batch.create_check_constraint("state", _OLD_STATES)
        batch.drop_column("device_type")
        batch.drop_column("firmware")
        batch.drop_column("missing_since")
    with op.batch_alter_table("concentrators") as batch:
        batch.drop_constraint("medium", type_="check")
        for name in ("table_synced_at", "clock_deviation_s", "clock_checked_at", "unreachable_since", "max_sessions",
                     "response_deadline_s", "medium"):
            batch.drop_column(name)
