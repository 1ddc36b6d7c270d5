"""N2PLoad's bookkeeping per meter: watermarks per profile, gaps still to fill, reachability as collection sees it.

Tables (migration 0004):

- ``collection_watermarks``: per (meter, profile OBIS) the instant up to which every interval
  (or daily row) is stored or known lost; N2PLoad asks for what lies after it. It moves in the
  same transaction as the rows it covers, and only over a contiguous prefix.
- ``collection_gaps``: runs of intervals missing inside what a meter (or its DC) returned, with
  how often they were asked again; ``open`` until stored (``filled``) or given up (``lost``).
- ``meter_collection``: per meter, whether the last collection got anything new, since when it
  gets nothing (the DC did not reach it), the last time new data came in, the last reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hes.db.models import Base, utcnow

__all__ = ["GAP_STATES", "CollectionGap", "CollectionWatermark", "MeterCollection"]

GAP_STATES = ("open", "filled", "lost")


class CollectionWatermark(Base):
    """Everything of ``profile_obis`` stamped at or before ``collected_until`` is stored (or known lost)."""

    __tablename__ = "collection_watermarks"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    profile_obis: Mapped[str] = mapped_column(String(24), primary_key=True)
    collected_until: Mapped[datetime]
    #: The profile's capture period as the meter last said (seconds; completeness expects 86400 / period).
    period_seconds: Mapped[int | None] = mapped_column(Integer)
    #: The profile's capture objects and scalers as last read (JSON), so a pass need not ask again.
    shape: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionGap(Base):
    """Intervals ``first_missing`` .. ``last_missing`` (interval ends) were absent from what the field returned."""

    __tablename__ = "collection_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    profile_obis: Mapped[str] = mapped_column(String(24))
    first_missing: Mapped[datetime]
    last_missing: Mapped[datetime]
    missing: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8), default="open")
    #: Passes that asked for the gap and still did not get it (the first detection counts as one).
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("meter_id", "profile_obis", "first_missing", name="uq_collection_gaps_start"),
        Index("ix_collection_gaps_meter_state", "meter_id", "state"),
    )


class MeterCollection(Base):
    """A meter's reachability as N2PLoad sees it (through its DC, or directly for a p2p meter)."""

    __tablename__ = "meter_collection"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    #: Did the last collection get anything newer than the watermark? None: never tried.
    reachable: Mapped[bool | None] = mapped_column(Boolean)
    #: The last time a collection got new data for the meter.
    last_contact: Mapped[datetime | None]
    last_attempt: Mapped[datetime | None]
    #: Since when collections get nothing newer (None while reachable).
    unreachable_since: Mapped[datetime | None]
    #: Collections in a row that got nothing newer.
    misses: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
