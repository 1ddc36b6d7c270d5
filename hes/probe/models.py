"""Tables of the field tool: key files exported to field devices, and bundles imported from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hes.db.models import Base, utcnow

__all__ = ["FieldImport", "FieldKeyExport"]


class FieldKeyExport(Base):
    """One key file handed to a field device: what it holds, until when, and the key its bundles are signed with.

    ``bundle_key_enc`` is the HMAC key of the bundles made with this key file, encrypted with the
    master key (``hes.keys``): the head-end verifies a bundle with it, the field device signs with
    its copy in the key file and never sees the master key. ``counters`` records the invocation
    counter blocks reserved for the file, per device and client SAP.
    """

    __tablename__ = "field_key_exports"

    export_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    devices: Mapped[list[str]] = mapped_column(JSON)
    counters: Mapped[dict[str, Any]] = mapped_column(JSON)
    bundle_key_enc: Mapped[bytes]


class FieldImport(Base):
    """A bundle imported into the head-end (its id is the key: importing it again is a no-op)."""

    __tablename__ = "field_imports"

    bundle_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("field_key_exports.export_id"))
    device_kind: Mapped[str] = mapped_column(String(16))  # "meter" or "concentrator"
    device_id: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    partial: Mapped[bool] = mapped_column(Boolean)
    read_started_at: Mapped[datetime]
    read_finished_at: Mapped[datetime]
    tool: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(64))
    # Rows in the bundle and, of those, rows new to the database when it was imported.
    intervals: Mapped[int] = mapped_column(Integer)
    registers: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    new_intervals: Mapped[int] = mapped_column(Integer)
    new_registers: Mapped[int] = mapped_column(Integer)
    new_events: Mapped[int] = mapped_column(Integer)
    # A concentrator's own event log (stored in ``concentrator_events``).
    concentrator_events: Mapped[int] = mapped_column(Integer)
    new_concentrator_events: Mapped[int] = mapped_column(Integer)
    # What has no table of its own: a concentrator's meter table, observations, why a read is partial.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_field_imports_device", "device_id", "imported_at"),)
