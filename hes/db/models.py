"""The HES schema as SQLAlchemy 2 models: assets, keys (encrypted), counters, readings, orders, audit.

Times are stored in UTC (``UtcDateTime``: aware in, aware UTC out). Readings use natural keys (the
identities of DESIGN.md) as primary keys, so storing the same reading twice is a no-op. Secrets
(``*_enc`` columns) are AES-GCM blobs from ``hes.keys``; system titles are public and stored plain.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AssetEvent",
    "AuditEntry",
    "Base",
    "Concentrator",
    "DeviceTypeRow",
    "EventRecord",
    "IntervalValue",
    "InvocationCounter",
    "LIFECYCLE_KINDS",
    "METER_STATES",
    "Meter",
    "ORDER_STATES",
    "POLICIES",
    "Order",
    "RegisterReading",
    "UtcDateTime",
    "utcnow",
]

METER_STATES = ("installed", "discovered", "commissioned", "decommissioned")
ORDER_STATES = ("PENDING", "EXE", "WARN", "FAIL")
LIFECYCLE_KINDS = ("installed", "discovered", "commissioned", "connected", "dismantled", "decommissioned",
                   "data received", "readdressed", "relinked", "missing from concentrator", "back in concentrator")
MEDIA = ("plc", "rf")
POLICIES = ("none", "lls", "hls-gmac")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, always UTC: naive datetimes are refused, results come back aware.

    SQLite has no time zones, so UTC is stored naive there; on PostgreSQL it is ``timestamptz``.
    Normalising before storage is what makes two spellings of one instant one key.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints keep Alembic migrations portable (SQLite batch mode needs names).
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime, bytes: LargeBinary}


def _policy_check() -> CheckConstraint:
    return CheckConstraint("security_policy IN ('none', 'lls', 'hls-gmac')", name="policy")


class Concentrator(Base):
    __tablename__ = "concentrators"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    wport: Mapped[int] = mapped_column(Integer, default=1)  # the management logical device
    client_sap: Mapped[int] = mapped_column(Integer, default=1)
    network_id: Mapped[int] = mapped_column(Integer, default=0)
    security_policy: Mapped[str] = mapped_column(String(16), default="none")
    password_enc: Mapped[bytes | None]
    system_title: Mapped[bytes | None]
    ek_enc: Mapped[bytes | None]
    ak_enc: Mapped[bytes | None]
    last_contact: Mapped[datetime | None]
    #: When the head-end last tried to reach it, answered or not (a failure is rechecked after a while).
    last_attempt: Mapped[datetime | None]
    reachable: Mapped[bool | None] = mapped_column(Boolean)
    #: Since when it cannot be reached (the first failed attempt of the outage; None while reachable).
    unreachable_since: Mapped[datetime | None]
    #: Its network towards its meters (``concentrator.links.Medium``): sets the deadline of tunnelled exchanges.
    medium: Mapped[str] = mapped_column(String(8), default="plc", server_default="plc")
    #: Its own response deadline for exchanges through it, and its own session budget (None: the defaults).
    response_deadline_s: Mapped[float | None] = mapped_column(Float)
    max_sessions: Mapped[int | None] = mapped_column(Integer)
    #: Its clock as last read: when, and how far off the head-end's (seconds, DC minus head-end).
    clock_checked_at: Mapped[datetime | None]
    clock_deviation_s: Mapped[float | None] = mapped_column(Float)
    #: When its meter table was last reconciled with the registry.
    table_synced_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (_policy_check(), CheckConstraint("medium IN ('plc', 'rf')", name="medium"))


class Meter(Base):
    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    make: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(32))
    #: The device type (``hes devicetype``) that says which objects it has; None: the default type.
    device_type: Mapped[str | None] = mapped_column(String(64))
    #: The most attributes one GET-with-list may ask of it, learned from its answers (None: not learned).
    max_get_with_list: Mapped[int | None] = mapped_column(SmallInteger)
    commissioning_date: Mapped[date | None] = mapped_column(Date)
    service_life_years: Mapped[int | None] = mapped_column(SmallInteger)
    decommissioning_date: Mapped[date | None] = mapped_column(Date)
    warranty_until: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), default="installed")
    # Link through a concentrator (all null for a point-to-point meter).
    concentrator_id: Mapped[str | None] = mapped_column(ForeignKey("concentrators.id"), index=True)
    logical_device: Mapped[int | None] = mapped_column(Integer)  # the DC's wPort for concentrated reads
    dc_physical_address: Mapped[bytes | None]  # as the gateway carries it
    # Direct link (all null for a meter behind a concentrator).
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    interface: Mapped[str | None] = mapped_column(String(16))
    server_sap: Mapped[int | None] = mapped_column(Integer)
    hdlc_physical_address: Mapped[int | None] = mapped_column(Integer)
    serial_device: Mapped[str | None] = mapped_column(String(255))
    client_sap: Mapped[int] = mapped_column(Integer, default=1)
    security_policy: Mapped[str] = mapped_column(String(16), default="none")
    password_enc: Mapped[bytes | None]
    system_title: Mapped[bytes | None]
    ek_enc: Mapped[bytes | None]
    ak_enc: Mapped[bytes | None]
    #: Since when its concentrator's meter table no longer lists it (None: listed, or not checked).
    missing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        _policy_check(),
        CheckConstraint("state IN ('installed', 'discovered', 'commissioned', 'decommissioned')", name="state"),
        CheckConstraint("interface IS NULL OR interface IN ('wrapper', 'hdlc', 'serial')", name="interface"),
        CheckConstraint("concentrator_id IS NOT NULL OR host IS NOT NULL OR serial_device IS NOT NULL", name="link"),
    )


class InvocationCounter(Base):
    """Per (device, client SAP): the next invocation counter to use and the last one received."""

    __tablename__ = "invocation_counters"

    device: Mapped[str] = mapped_column(String(64), primary_key=True)  # meter serial or concentrator id
    client_sap: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_counter: Mapped[int] = mapped_column(BigInteger)
    last_received: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntervalValue(Base):
    """One captured value of a profile interval; identity (meter, OBIS, attribute, interval end)."""

    __tablename__ = "interval_values"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    obis: Mapped[str] = mapped_column(String(24), primary_key=True)
    attribute: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    interval_end: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)  # as read, before the scaler
    scaler: Mapped[int] = mapped_column(SmallInteger, default=0)
    unit: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[int | None] = mapped_column(Integer)  # the profile's status word, when captured
    quality: Mapped[int] = mapped_column(Integer, default=0)  # our quality flags (bitmask)
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The key in (meter, time, OBIS, attribute) order serves a meter's time ranges itself, so no second
    # index has to be written per row; on SQLite it is the clustered key (no rowid B-tree either).
    __table_args__ = (PrimaryKeyConstraint("meter_id", "interval_end", "obis", "attribute", name="pk_interval_values"),
                      {"sqlite_with_rowid": False})


class RegisterReading(Base):
    """A register value; identity (meter, OBIS, capture time)."""

    __tablename__ = "register_readings"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    obis: Mapped[str] = mapped_column(String(24), primary_key=True)
    capture_time: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)  # as read, before the scaler
    scaler: Mapped[int] = mapped_column(SmallInteger, default=0)
    unit: Mapped[int | None] = mapped_column(SmallInteger)
    deviation_minutes: Mapped[int | None] = mapped_column(SmallInteger)  # the meter's own UTC offset, kept
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_register_readings_meter_time", "meter_id", "capture_time"),
        {"sqlite_with_rowid": False},
    )


class EventRecord(Base):
    """An entry of a meter's event log; identity (meter, log OBIS, event code, event time)."""

    __tablename__ = "events"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    log_obis: Mapped[str] = mapped_column(String(24), primary_key=True)
    event_code: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_time: Mapped[datetime] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(128))
    collected_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_events_meter_time", "meter_id", "event_time"), {"sqlite_with_rowid": False})


class Order(Base):
    """A command for one meter and its result (EXE/WARN/FAIL, or PENDING while it runs)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_number: Mapped[str] = mapped_column(String(40), unique=True)
    # The serial as asked, not a foreign key: an order for an unknown meter is recorded and FAILs.
    meter_serial: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(8), default="PENDING")
    observations: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("state IN ('PENDING', 'EXE', 'WARN', 'FAIL')", name="state"),
        Index("ix_orders_meter_created", "meter_serial", "created_at"),
        Index("ix_orders_state", "state"),
    )


class AssetEvent(Base):
    """A meter's lifecycle: installed, commissioned, connected, dismantled, data received, ..."""

    __tablename__ = "asset_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_asset_events_meter_at", "meter_id", "at"),)


class AuditEntry(Base):
    """Who did what, when, with which result: every command and registry change."""

    __tablename__ = "audit_trail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    who: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    what: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_trail_at", "at"),)



class DeviceTypeRow(Base):
    """A device type added by an engineer (``hes devicetype add``): its file, who added it and when."""

    __tablename__ = "device_types"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The JSON document as added (``hes.devicetypes``, format ``hes-devicetype/1``).
    definition: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime]
