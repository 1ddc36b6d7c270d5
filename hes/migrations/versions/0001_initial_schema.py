"""The initial schema: assets, keys at rest, invocation counters, readings, orders, lifecycle, audit.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_trail",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("who", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_trail")),
    )
    op.create_index("ix_audit_trail_at", "audit_trail", ["at"])
    op.create_table(
        "concentrators",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("wport", sa.Integer(), nullable=False),
        sa.Column("client_sap", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("security_policy", sa.String(length=16), nullable=False),
        sa.Column("password_enc", sa.LargeBinary(), nullable=True),
        sa.Column("system_title", sa.LargeBinary(), nullable=True),
        sa.Column("ek_enc", sa.LargeBinary(), nullable=True),
        sa.Column("ak_enc", sa.LargeBinary(), nullable=True),
        sa.Column("last_contact", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("security_policy IN ('none', 'lls', 'hls-gmac')", name=op.f("ck_concentrators_policy")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concentrators")),
    )
    op.create_table(
        "invocation_counters",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("client_sap", sa.Integer(), nullable=False),
        sa.Column("next_counter", sa.BigInteger(), nullable=False),
        sa.Column("last_received", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device", "client_sap", name=op.f("pk_invocation_counters")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_number", sa.String(length=40), nullable=False),
        sa.Column("meter_serial", sa.String(length=64), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("observations", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('PENDING', 'EXE', 'WARN', 'FAIL')", name=op.f("ck_orders_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("order_number", name=op.f("uq_orders_order_number")),
    )
    op.create_index("ix_orders_meter_created", "orders", ["meter_serial", "created_at"])
    op.create_index("ix_orders_state", "orders", ["state"])
    op.create_table(
        "meters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("make", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("commissioning_date", sa.Date(), nullable=True),
        sa.Column("service_life_years", sa.SmallInteger(), nullable=True),
        sa.Column("decommissioning_date", sa.Date(), nullable=True),
        sa.Column("warranty_until", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("concentrator_id", sa.String(length=64), nullable=True),
        sa.Column("logical_device", sa.Integer(), nullable=True),
        sa.Column("dc_physical_address", sa.LargeBinary(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("interface", sa.String(length=16), nullable=True),
        sa.Column("server_sap", sa.Integer(), nullable=True),
        sa.Column("hdlc_physical_address", sa.Integer(), nullable=True),
        sa.Column("serial_device", sa.String(length=255), nullable=True),
        sa.Column("client_sap", sa.Integer(), nullable=False),
        sa.Column("security_policy", sa.String(length=16), nullable=False),
        sa.Column("password_enc", sa.LargeBinary(), nullable=True),
        sa.Column("system_title", sa.LargeBinary(), nullable=True),
        sa.Column("ek_enc", sa.LargeBinary(), nullable=True),
        sa.Column("ak_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "interface IS NULL OR interface IN ('wrapper', 'hdlc', 'serial')", name=op.f("ck_meters_interface")
        ),
        sa.CheckConstraint("security_policy IN ('none', 'lls', 'hls-gmac')", name=op.f("ck_meters_policy")),
        sa.CheckConstraint("state IN ('installed', 'commissioned', 'decommissioned')", name=op.f("ck_meters_state")),
        sa.CheckConstraint(
            "concentrator_id IS NOT NULL OR host IS NOT NULL OR serial_device IS NOT NULL", name=op.f("ck_meters_link")
        ),
        sa.ForeignKeyConstraint(
            ["concentrator_id"], ["concentrators.id"], name=op.f("fk_meters_concentrator_id_concentrators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("serial", name=op.f("uq_meters_serial")),
    )
    op.create_index("ix_meters_concentrator_id", "meters", ["concentrator_id"])
    op.create_table(
        "asset_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_asset_events_meter_id_meters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_events")),
    )
    op.create_index("ix_asset_events_meter_at", "asset_events", ["meter_id", "at"])
    op.create_table(
        "events",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("log_obis", sa.String(length=24), nullable=False),
        sa.Column("event_code", sa.Integer(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_events_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", "log_obis", "event_code", "event_time", name=op.f("pk_events")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_events_meter_time", "events", ["meter_id", "event_time"])
    op.create_table(
        "interval_values",
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
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_interval_values_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", "obis", "attribute", "interval_end", name=op.f("pk_interval_values")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_interval_values_meter_end", "interval_values", ["meter_id", "interval_end"])
    op.create_table(
        "register_readings",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("obis", sa.String(length=24), nullable=False),
        sa.Column("capture_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("scaler", sa.SmallInteger(), nullable=False),
        sa.Column("unit", sa.SmallInteger(), nullable=True),
        sa.Column("deviation_minutes", sa.SmallInteger(), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_register_readings_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", "obis", "capture_time", name=op.f("pk_register_readings")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_register_readings_meter_time", "register_readings", ["meter_id", "capture_time"])


def downgrade() -> None:
    op.drop_index("ix_register_readings_meter_time", table_name="register_readings")
    op.drop_table("register_readings")
    op.drop_index("ix_interval_values_meter_end", table_name="interval_values")
    op.drop_table("interval_values")
    op.drop_index("ix_events_meter_time", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_asset_events_meter_at", table_name="asset_events")
    op.drop_table("asset_events")
    op.drop_index("ix_meters_concentrator_id", table_name="meters")
    op.drop_table("meters")
    op.drop_index("ix_orders_state", table_name="orders")
    op.drop_index("ix_orders_meter_created", table_name="orders")
    op.drop_table("orders")
    op.drop_table("invocation_counters")
    op.drop_table("concentrators")
    op.drop_index("ix_audit_trail_at", table_name="audit_trail")
    op.drop_table("audit_trail")
