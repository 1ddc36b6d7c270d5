"""The CIM outbox on the HES database: messages written with the data they carry, and their delivery state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hes.db.models import Base, utcnow

__all__ = ["OUTBOX_STATES", "OutboxMessage"]

#: PENDING: to deliver; DELIVERED: in the legacy database; FAILED: to re-inject at ``next_attempt_at``;
#: DISCARDED: refused by the integration step for good (no readings, load-curve or event identifiers).
OUTBOX_STATES = ("PENDING", "DELIVERED", "FAILED", "DISCARDED")


class OutboxMessage(Base):
    """One CIM message (an IEC 61968-100 EventMessage) and where its delivery stands."""

    __tablename__ = "cim_outbox"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    noun: Mapped[str] = mapped_column(String(32))
    correlation_id: Mapped[str | None] = mapped_column(String(255))
    set_id: Mapped[str | None] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=1)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    meters: Mapped[str] = mapped_column(Text)  # the serials it carries, comma-separated (for status and search)
    item_count: Mapped[int] = mapped_column(Integer)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(12), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When it may be delivered (again): creation, or a failure plus the re-injection delay.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A worker's claim: others leave it alone until then (a killed worker's claim lapses).
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("state IN ('PENDING', 'DELIVERED', 'FAILED', 'DISCARDED')", name="state"),
        Index("ix_cim_outbox_due", "state", "next_attempt_at"),
        Index("ix_cim_outbox_created", "created_at"),
    )
