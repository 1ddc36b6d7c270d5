"""Events and safe control: users and roles, event criticality, alarm publication queue (issue 7).

Revision ID: 0006
Revises: 0005

Creates the tables of ``hes.events.models``: ``users``, ``mqtt_outbox`` and ``concentrator_events``.
Event names and criticalities are not columns: they come from the event catalog when events are read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("os_user", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'technician', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.UniqueConstraint("os_user", name=op.f("uq_users_os_user")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_users_token_hash")),
    )
    op.create_table(
        "mqtt_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('alarm', 'event', 'command')", name=op.f("ck_mqtt_outbox_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mqtt_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_mqtt_outbox_message_id")),
    )
    op.create_index("ix_mqtt_outbox_pending", "mqtt_outbox", ["published_at", "id"])
    op.create_table(
        "concentrator_events",
        sa.Column("concentrator_id", sa.String(length=64), nullable=False),
        sa.Column("log_obis", sa.String(length=24), nullable=False),
        sa.Column("event_code", sa.Integer(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("concentrator_id", "log_obis", "event_code", "event_time",
                                name=op.f("pk_concentrator_events")),
    )
    op.create_index("ix_concentrator_events_time", "concentrator_events", ["concentrator_id", "event_time"])


def downgrade() -> None:
    op.drop_index("ix_concentrator_events_time", table_name="concentrator_events")
    op.drop_table("concentrator_events")
    op.drop_index("ix_mqtt_outbox_pending", table_name="mqtt_outbox")
    op.drop_table("mqtt_outbox")
    op.drop_table("users")
