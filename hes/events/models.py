"""Tables of events, alarms and safe control: head-end users, the MQTT outbox, the concentrators' own events.

On the shared ``hes.db.models.Base`` (times in UTC, named constraints); migration 0006 creates
exactly these tables. Meter events stay in ``events`` (``hes.db.models.EventRecord``): their name
and criticality come from the event catalog (``hes.events.catalog``), so a changed table applies
to events already stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hes.db.models import Base, utcnow

__all__ = ["ROLES", "ConcentratorEvent", "MqttMessage", "User"]

#: Roles from the least to the most trusted; each may do what the ones before it may.
ROLES = ("viewer", "operator", "technician", "admin")


class User(Base):
    """A head-end user: a name, a role, the OS login mapped to it, and a token's hash (never the token)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    os_user: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: SHA-256 of the token (hex); a token is shown once, when issued.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (CheckConstraint("role IN ('viewer', 'operator', 'technician', 'admin')", name="role"),)


class MqttMessage(Base):
    """One message for the event bus, written in the transaction that stored what it reports.

    ``message_id`` is derived from the identity of what it reports (an event's (meter, log, code,
    time), an order number), so reporting the same thing twice queues it once; it travels in the
    payload so that subscribers can drop the duplicates QoS 1 allows.
    """

    __tablename__ = "mqtt_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # alarm, event, command
    payload: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: A publisher's claim: another worker leaves the row alone until then.
    claimed_until: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('alarm', 'event', 'command')", name="kind"),
        Index("ix_mqtt_outbox_pending", "published_at", "id"),
    )


class ConcentratorEvent(Base):
    """An entry of a concentrator's own event log; identity (concentrator, log, code, time)."""

    __tablename__ = "concentrator_events"

    concentrator_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    log_obis: Mapped[str] = mapped_column(String(24), primary_key=True)
    event_code: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_time: Mapped[datetime] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(128))
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_concentrator_events_time", "concentrator_id", "event_time"),)
