"""Mass planning: plans, plan runs, per-meter work items with leases (issue 5).

Also the meter tags plans select by, the objects each meter (or make and model) has for the
support check, and APScheduler's persistent job store (``scheduler_jobs``, in APScheduler's shape).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hes.db.models

__all__: list[str] = []

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, hes.db.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("selection_kind", sa.String(16), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=True),
        sa.Column("commands", sa.String(64), nullable=False),
        sa.Column("range_from", sa.String(40), nullable=True),
        sa.Column("range_to", sa.String(40), nullable=True),
        sa.Column("window_start", sa.String(5), nullable=True),
        sa.Column("window_end", sa.String(5), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay_s", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("trigger_kind", sa.String(16), nullable=True),
        sa.Column("trigger_value", sa.String(120), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        _time("last_fired_at"),
        sa.Column("created_by", sa.String(64), nullable=False),
        _time("created_at", False),
        _time("updated_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
        sa.UniqueConstraint("name", name="uq_plans_name"),
    )
    op.create_table(
        "plan_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("selection_kind", sa.String(16), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=True),
        sa.Column("commands", sa.String(64), nullable=False),
        _time("range_start"),
        _time("range_end"),
        sa.Column("window_start", sa.String(5), nullable=True),
        sa.Column("window_end", sa.String(5), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay_s", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        _time("created_at", False),
        _time("finished_at"),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_plan_runs"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name="fk_plan_runs_plan_id_plans"),
    )
    op.create_index("ix_plan_runs_plan_id", "plan_runs", ["plan_id"])
    op.create_index("ix_plan_runs_state", "plan_runs", ["state"])
    op.create_table(
        "plan_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("concentrator_id", sa.String(64), nullable=True),
        sa.Column("command", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at", False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        _time("lease_expires_at"),
        sa.Column("worked_by", sa.String(128), nullable=True),
        _time("started_at"),
        _time("finished_at"),
        sa.Column("observations", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan_items"),
        sa.ForeignKeyConstraint(["run_id"], ["plan_runs.id"], name="fk_plan_items_run_id_plan_runs"),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_plan_items_meter_id_meters"),
        sa.UniqueConstraint("run_id", "meter_id", "command", name="uq_plan_items_run_meter_command"),
    )
    op.create_index("ix_plan_items_claim", "plan_items", ["state", sa.text("priority DESC"), "id"])
    op.create_index("ix_plan_items_run_state", "plan_items", ["run_id", "state"])
    op.create_table(
        "meter_tags",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "tag", name="pk_meter_tags"),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_meter_tags_meter_id_meters"),
    )
    op.create_index("ix_meter_tags_tag", "meter_tags", ["tag"])
    op.create_table(
        "meter_objects",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        _time("read_at", False),
        sa.PrimaryKeyConstraint("meter_id", name="pk_meter_objects"),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_meter_objects_meter_id_meters"),
    )
    op.create_table(
        "model_objects",
        sa.Column("make", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        _time("updated_at", False),
        sa.PrimaryKeyConstraint("make", "model", name="pk_model_objects"),
    )
    # APScheduler's SQLAlchemyJobStore table, as it would create it itself (it checks before creating).
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_jobs"),
    )
    op.create_index("ix_scheduler_jobs_next_run_time", "scheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_next_run_time", table_name="scheduler_jobs")
    op.drop_table("scheduler_jobs")
    op.drop_table("model_objects")
    op.drop_table("meter_objects")
    op.drop_index("ix_meter_tags_tag", table_name="meter_tags")
    op.drop_table("meter_tags")
    op.drop_index("ix_plan_items_run_state", table_name="plan_items")
    op.drop_index("ix_plan_items_claim", table_name="plan_items")
    op.drop_table("plan_items")
    op.drop_index("ix_plan_runs_state", table_name="plan_runs")
    op.drop_index("ix_plan_runs_plan_id", table_name="plan_runs")
    op.drop_table("plan_runs")
    op.drop_table("plans")
