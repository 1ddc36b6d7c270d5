"""Interval values keyed (meter, interval end, OBIS, attribute); the (meter, end) index dropped.

The old key, (meter, OBIS, attribute, interval end), could not serve "this meter's intervals
between two instants" on its own, so a second index did, and every stored value wrote two
B-trees. In the new order the key serves those ranges (a meter has a handful of channels), and
a collected value writes one B-tree: about a fifth less database work per stored value on
SQLite, with the same identity (the same columns are unique).

SQLite cannot change a primary key in place: the table is rebuilt (``WITHOUT ROWID``, as before)
and the rows copied. PostgreSQL swaps the constraint.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMNS = "meter_id, obis, attribute, interval_end, value, scaler, unit, status, quality, collected_at"


def _rebuild_sqlite(key: tuple[str, ...]) -> None:
    op.create_table(
        "interval_values_rekeyed",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("obis", sa.String(length=24), nullable=False),
        sa.Column("attribute", sa.SmallInteger(), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("scaler", sa.SmallInteger(), nullable=False),
        sa.Column("unit", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_interval_values_meter_id_meters"),
        sa.PrimaryKeyConstraint(*key, name="pk_interval_values"),
        sqlite_with_rowid=False,
    )
    op.execute(f"INSERT INTO interval_values_rekeyed ({_COLUMNS}) SELECT {_COLUMNS} FROM interval_values")
    op.drop_table("interval_values")
    op.rename_table("interval_values_rekeyed", "interval_values")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_interval_values_meter_end", table_name="interval_values")
        _rebuild_sqlite(("meter_id", "interval_end", "obis", "attribute"))
        return
    op.drop_constraint("pk_interval_values", "interval_values", type_="primary")
    op.create_primary_key("pk_interval_values", "interval_values", ["meter_id", "interval_end", "obis", "attribute"])
    op.drop_index("ix_interval_values_meter_end", table_name="interval_values")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(("meter_id", "obis", "attribute", "interval_end"))
    else:
        op.drop_constraint("pk_interval_values", "interval_values", type_="primary")
        op.create_primary_key("pk_interval_values", "interval_values",
                              ["meter_id", "obis", "attribute", "interval_end"])
    op.create_index("ix_interval_values_meter_end", "interval_values", ["meter_id", "interval_end"])
