"""The scheduler's tables: plans, plan runs, work items with leases, meter tags and the objects each meter has.

A plan names a selection of meters, commands, a date range, a daily window, retries and a trigger.
Each run copies what it needs from its plan (a plan changed later does not change a run under way)
and owns one work item per (meter, command). Work items carry their lease (owner, expiry), their
attempts and the time they may next be tried, and their result: that is all a worker needs to claim
work (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and to take over a dead worker's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hes.db.models import Base, utcnow

__all__ = [
    "ITEM_FINAL_STATES",
    "ITEM_STATES",
    "JOBS_TABLE",
    "MeterObjects",
    "MeterTag",
    "Plan",
    "PlanItem",
    "PlanRun",
    "SELECTION_KINDS",
    "TRIGGER_KINDS",
]

#: How a plan chooses its meters: a list of serials, a concentrator's meters, a tag, every commissioned
#: meter, or every commissioned meter behind a concentrator (N2PLoad).
SELECTION_KINDS = ("list", "concentrator", "tag", "all", "concentrators")
TRIGGER_KINDS = ("cron", "interval", "date")
#: PENDING: waiting (maybe for a retry); RUNNING: leased by a worker; UNSUPPORTED: the meter lacks the
#: object the command reads, reported and never run.
ITEM_STATES = ("PENDING", "RUNNING", "EXE", "WARN", "FAIL", "UNSUPPORTED")
ITEM_FINAL_STATES = ("EXE", "WARN", "FAIL", "UNSUPPORTED")
#: APScheduler's persistent job store (``SQLAlchemyJobStore``) in the HES database.
JOBS_TABLE = "scheduler_jobs"


class Plan(Base):
    """A mass-planning plan (``hes plan create``), or a built-in one (default-daily, n2pload)."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    selection_kind: Mapped[str] = mapped_column(String(16))
    #: The serials (list), the concentrator id, the tag; None for all / concentrators.
    selection: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: Comma-separated, in execution order (``scheduler.contract.COMMANDS``).
    commands: Mapped[str] = mapped_column(String(64))
    #: The data range as given: an ISO instant or a time relative to the run ("-1d", "now"); None lets
    #: the executor decide (N2PLoad: from each meter's watermark).
    range_from: Mapped[str | None] = mapped_column(String(40))
    range_to: Mapped[str | None] = mapped_column(String(40))
    #: Daily window (UTC) in which the plan's items may run, "HH:MM"; None: any time.
    window_start: Mapped[str | None] = mapped_column(String(5))
    window_end: Mapped[str | None] = mapped_column(String(5))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_s: Mapped[float] = mapped_column(Float, default=300.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    trigger_kind: Mapped[str | None] = mapped_column(String(16))
    trigger_value: Mapped[str | None] = mapped_column(String(120))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When the scheduler last started a run of it (several workers' schedulers fire once between them).
    last_fired_at: Mapped[datetime | None]
    #: A plan that disconnects more than one meter: who confirmed it (``--confirm-disconnect``), when,
    #: and how many meters its selection held then; a run over more meters is not run on this confirmation.
    disconnect_confirmed_by: Mapped[str | None] = mapped_column(String(64))
    disconnect_confirmed_at: Mapped[datetime | None]
    disconnect_confirmed_meters: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanRun(Base):
    """One execution of a plan: its parameters as resolved when it started, and its summary once done."""

    __tablename__ = "plan_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    #: manual (hes plan run), schedule (a trigger), n2pload (hes n2pload)
    trigger: Mapped[str] = mapped_column(String(16))
    selection_kind: Mapped[str] = mapped_column(String(16))
    selection: Mapped[Any] = mapped_column(JSON, nullable=True)
    commands: Mapped[str] = mapped_column(String(64))
    range_start: Mapped[datetime | None]
    range_end: Mapped[datetime | None]
    window_start: Mapped[str | None] = mapped_column(String(5))
    window_end: Mapped[str | None] = mapped_column(String(5))
    retries: Mapped[int] = mapped_column(Integer)
    retry_delay_s: Mapped[float] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer)
    #: running, done; refused: a disconnect whose selection outgrew its confirmation, not run (see notes)
    state: Mapped[str] = mapped_column(String(8), default="running")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    #: What the selection could not give (unknown serials in a list file), one line each.
    notes: Mapped[str | None] = mapped_column(Text)
    #: Counts per state, meters, rows stored; written when the last item is final.
    summary: Mapped[Any] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_plan_runs_state", "state"),)


class PlanItem(Base):
    """One command for one meter in one run: its lease, attempts and result."""

    __tablename__ = "plan_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("plan_runs.id"))
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    serial: Mapped[str] = mapped_column(String(64))
    concentrator_id: Mapped[str | None] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(16))
    #: Copied from the run: claims take the highest first, then the oldest.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    #: The worker that recorded the last outcome.
    worked_by: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    observations: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    stored: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("run_id", "meter_id", "command", name="uq_plan_items_run_meter_command"),
        # The claim walks this index in its order (priority DESC, id) and stops after its LIMIT,
        # instead of sorting every pending item of a large fleet on every claim.
        Index("ix_plan_items_claim", "state", text("priority DESC"), "id"),
        Index("ix_plan_items_run_state", "run_id", "state"),
        # The claim's check that no other worker is working on the meter (``scheduler.engine``).
        Index("ix_plan_items_meter_state", "meter_id", "state"),
    )


class MeterTag(Base):
    """A group of meters by name (a feeder, a district, a pilot): ``hes plan tag``."""

    __tablename__ = "meter_tags"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_meter_tags_tag", "tag"),)


class MeterObjects(Base):
    """The objects one meter has, as its association's object list said (``class_id/OBIS`` strings)."""

    __tablename__ = "meter_objects"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    objects: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
