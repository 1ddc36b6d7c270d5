"""The legacy integration database and the integration step that loads CIM messages into it.

The legacy side (billing and the other legacy systems) reads four tables, created here on first
use (``ensure_schema``; they are not part of the HES migrations, the database is not ours):

| table | identity (unique) | what |
|---|---|---|
| ``cim_messages`` | ``message_id`` | every message integrated: Noun, CorrelationID, Source, parts, the raw XML |
| ``legacy_interval_readings`` | (meter, reading_type, interval_end) | load curve: value (NULL: missing), qualities |
| ``legacy_readings`` | (meter, reading_type, reading_time) | registers and daily closures |
| ``legacy_events`` | ``event_mrid`` | EndDeviceEvents: meter, EndDeviceEventType, time, log, code, reason |

``integrate(engine, xml, ...)`` is the integration step: it checks the message (well-formed, an
IEC 61968-100 EventMessage with Verb, Noun, MessageID; a payload of that Noun; against the XSDs
too when ``schemas`` are given), reads its rows from the XML, and inserts message and rows in one
transaction with ``ON CONFLICT DO NOTHING`` on every identity: integrating a message twice, or
two messages that carry the same reading, stores it once. One exception: an interval stored as
known missing (NULL value) takes the value of a later message that carries one (a late read
brought it after all), with that message's qualities and id; a value is never replaced, and never
by a NULL. A message whose payload carries no
readings, load-curve or event identifiers (meter, ReadingType or event type, time) is refused for
good (``Discarded``); a message that is not valid raises ``InvalidMessage``; a database that is
down or refuses raises ``StorageError``. Values are exact decimals (PostgreSQL ``numeric``; text
on SQLite, which has no exact decimal type).
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type hints
from sqlalchemy import (
    Column,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

from cim.messages import END_DEVICE_EVENTS_NS, MESSAGE_NS, METER_READINGS_NS, NOUNS
from cim.reading_types import CimError
from hes.db.engine import storage_errors
from hes.db.models import UtcDateTime

__all__ = [
    "CIM_MESSAGES",
    "Discarded",
    "Integrated",
    "InvalidMessage",
    "LEGACY_EVENTS",
    "LEGACY_INTERVALS",
    "LEGACY_READINGS",
    "ExactDecimal",
    "ParsedMessage",
    "Schemas",
    "ensure_schema",
    "integrate",
    "legacy_counts",
    "load_schemas",
    "metadata",
    "parse_message",
]

logger = logging.getLogger(__name__)


class InvalidMessage(CimError):
    """A message the integration step cannot take: not XML, not an EventMessage, or not valid against the XSDs."""


class ExactDecimal(TypeDecorator[Decimal]):
    """An exact decimal: ``numeric`` on PostgreSQL, its text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric(30, 9)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String(48) if dialect.name == "sqlite" else Numeric(30, 9))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


metadata = MetaData()

CIM_MESSAGES = Table(
    "cim_messages", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("noun", String(32), nullable=False),
    Column("correlation_id", String(255)),
    Column("source", String(255)),
    Column("set_id", String(64)),
    Column("part", Integer),
    Column("parts", Integer),
    Column("xml", Text, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)
LEGACY_INTERVALS = Table(
    "legacy_interval_readings", metadata,
    Column("meter", String(64), primary_key=True),
    Column("reading_type", String(64), primary_key=True),
    Column("interval_end", UtcDateTime(), primary_key=True),
    Column("value", ExactDecimal()),  # NULL: a known missing interval
    Column("qualities", String(255)),  # ReadingQuality codes, space-separated
    Column("message_id", String(64), nullable=False),
)
LEGACY_READINGS = Table(
    "legacy_readings", metadata,
    Column("meter", String(64), primary_key=True),
    Column("reading_type", String(64), primary_key=True),
    Column("reading_time", UtcDateTime(), primary_key=True),
    Column("value", ExactDecimal(), nullable=False),
    Column("qualities", String(255)),
    Column("message_id", String(64), nullable=False),
)
LEGACY_EVENTS = Table(
    "legacy_events", metadata,
    Column("event_mrid", String(64), primary_key=True),
    Column("meter", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("event_time", UtcDateTime(), nullable=False),
    Column("event_log", String(24)),
    Column("event_code", Integer),
    Column("reason", Text),
    Column("message_id", String(64), nullable=False),
)

_schema_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_schema_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Create the legacy tables that are missing (once per engine); ``StorageError`` when the database is down."""
    with _schema_lock:
        if engine in _schema_ready:
            return
        with storage_errors(engine):
            metadata.create_all(engine, checkfirst=True)
        _schema_ready.add(engine)


# --- reading a message ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schemas:
    """The IEC XSDs: the envelope, and each payload by its namespace."""

    envelope: Any
    payloads: dict[str, Any]


def load_schemas(folder: Path) -> Schemas:
    """The XSDs of ``folder`` (``Message.xsd``, ``MeterReadings.xsd``, ``EndDeviceEvents.xsd``); ``CimError`` if not."""
    def load(name: str) -> Any:
        try:
            return etree.XMLSchema(etree.parse(str(folder / name)))
        except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise CimError(f"cannot load the CIM schema {folder / name}: {exc}") from None

    return Schemas(load("Message.xsd"), {METER_READINGS_NS: load("MeterReadings.xsd"),
                                         END_DEVICE_EVENTS_NS: load("EndDeviceEvents.xsd")})


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What the integration step reads from a message: its header and its rows."""

    message_id: str
    noun: str
    correlation_id: str | None
    source: str | None
    set_id: str | None
    part: int | None
    parts: int | None
    intervals: tuple[dict[str, Any], ...]
    readings: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    skipped: int  # entries without their identifiers

    @property
    def rows(self) -> int:
        return len(self.intervals) + len(self.readings) + len(self.events)


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_EVENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hes:cim:legacy-event")


def _text(element: Any, path: str, ns: dict[str, str]) -> str | None:
    found = element.find(path, ns)
    if found is None or found.text is None or not found.text.strip():
        return None
    return str(found.text).strip()


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _qualities(element: Any, ns: dict[str, str]) -> str | None:
    codes = [q.get("ref") for q in element.findall("c:ReadingQualities/c:ReadingQualityType", ns) if q.get("ref")]
    return " ".join(codes) or None


def _meter_readings(payload: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    ns = {"c": METER_READINGS_NS}
    intervals: list[dict[str, Any]] = []
    readings: list[dict[str, Any]] = []
    skipped = 0
    for meter_reading in payload.findall("c:MeterReading", ns):
        meter = _text(meter_reading, "c:Meter/c:mRID", ns)
        for block in meter_reading.findall("c:IntervalBlocks", ns):
            reference = block.find("c:ReadingType", ns)
            reading_type = None if reference is None else reference.get("ref")
            for item in block.findall("c:IntervalReadings", ns):
                end = _time(_text(item, "c:timeStamp", ns))
                value_text = _text(item, "c:value", ns)
                value = _decimal(value_text)
                if meter is None or not reading_type or end is None or (value_text is not None and value is None):
                    skipped += 1
                    continue
                intervals.append({"meter": meter, "reading_type": reading_type, "interval_end": end, "value": value,
                                  "qualities": _qualities(item, ns)})
        for item in meter_reading.findall("c:Readings", ns):
            reference = item.find("c:ReadingType", ns)
            reading_type = None if reference is None else reference.get("ref")
            at = _time(_text(item, "c:timeStamp", ns))
            value = _decimal(_text(item, "c:value", ns))
            if meter is None or not reading_type or at is None or value is None:
                skipped += 1
                continue
            readings.append({"meter": meter, "reading_type": reading_type, "reading_time": at, "value": value,
                             "qualities": _qualities(item, ns)})
    return intervals, readings, skipped


def _end_device_events(payload: Any) -> tuple[list[dict[str, Any]], int]:
    ns = {"c": END_DEVICE_EVENTS_NS}
    events: list[dict[str, Any]] = []
    skipped = 0
    for event in payload.findall("c:EndDeviceEvent", ns):
        meter = _text(event, "c:Assets/c:mRID", ns)
        reference = event.find("c:EndDeviceEventType", ns)
        event_type = None if reference is None else reference.get("ref")
        at = _time(_text(event, "c:createdDateTime", ns))
        if meter is None or not event_type or at is None:
            skipped += 1
            continue
        details = {
            _text(d, "c:name", ns): _text(d, "c:value", ns) for d in event.findall("c:EndDeviceEventDetails", ns)
        }
        code = details.get("eventCode")
        mrid = _text(event, "c:mRID", ns) or str(uuid.uuid5(_EVENT_IDS, f"{meter}|{event_type}|{at.isoformat()}"))
        events.append({
            "event_mrid": mrid, "meter": meter, "event_type": event_type, "event_time": at,
            "event_log": details.get("eventLog"), "event_code": int(code) if code and code.isdigit() else None,
            "reason": _text(event, "c:reason", ns),
        })
    return events, skipped


def parse_message(xml: bytes, schemas: Schemas | None = None) -> ParsedMessage:
    """Check ``xml`` and read its header and rows; ``InvalidMessage`` (one line) when it is not a valid message."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidMessage(f"not well-formed XML: {exc}") from None
    m = {"m": MESSAGE_NS}
    if root.tag != f"{{{MESSAGE_NS}}}EventMessage":
        raise InvalidMessage(f"not an IEC 61968-100 EventMessage: root element {root.tag}")
    if schemas is not None and not schemas.envelope.validate(root):
        raise InvalidMessage(f"envelope not valid against Message.xsd: {schemas.envelope.error_log.last_error}")
    verb, noun = _text(root, "m:Header/m:Verb", m), _text(root, "m:Header/m:Noun", m)
    message_id = _text(root, "m:Header/m:MessageID", m)
    if verb != "created":
        raise InvalidMessage(f"Header Verb is {verb!r}, not 'created'")
    if noun not in NOUNS:
        raise InvalidMessage(f"Header Noun {noun!r} is not one of {', '.join(NOUNS)}")
    if message_id is None:
        raise InvalidMessage("the Header has no MessageID")
    payloads = root.findall("m:Payload/*", m)
    namespace = NOUNS[noun]
    if len(payloads) != 1 or payloads[0].tag != f"{{{namespace}}}{noun}":
        raise InvalidMessage(f"the Payload is not one {noun} element of {namespace}")
    payload = payloads[0]
    if schemas is not None:
        schema = schemas.payloads[namespace]
        if not schema.validate(etree.ElementTree(payload)):
            raise InvalidMessage(f"payload not valid against {noun}.xsd: {schema.error_log.last_error}")
    properties = {_text(p, "m:Name", m): _text(p, "m:Value", m) for p in root.findall("m:Header/m:Property", m)}

    def number(name: str) -> int | None:
        value = properties.get(name)
        return int(value) if value is not None and value.isdigit() else None

    intervals: list[dict[str, Any]] = []
    readings: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    if noun == "MeterReadings":
        intervals, readings, skipped = _meter_readings(payload)
    else:
        events, skipped = _end_device_events(payload)
    return ParsedMessage(
        message_id, noun, _text(root, "m:Header/m:CorrelationID", m), _text(root, "m:Header/m:Source", m),
        properties.get("setId"), number("part"), number("parts"), tuple(intervals), tuple(readings), tuple(events),
        skipped,
    )


# --- integrating it -------------------------------------------------------------------------------------------------


class Discarded(CimError):
    """The integration step refuses a message for good: it carries no readings, load-curve or event identifiers."""


@dataclass(frozen=True, slots=True)
class Integrated:
    """A message integrated: how many of its rows were new on the legacy side (0 when delivered before).

    ``new_rows`` counts a known missing interval filled with a value as new.
    """

    message_id: str
    new_message: bool
    new_rows: int
    rows: int
    skipped: int


def _insert_ignore(engine: Engine, table: Table) -> Any:
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise CimError(f"the legacy database must be SQLite or PostgreSQL, not {engine.dialect.name}")


def _insert_or_fill(engine: Engine) -> Any:
    """Load-curve rows: insert, or fill a known missing (NULL) interval with a value; nothing else changes."""
    table = LEGACY_INTERVALS
    if engine.dialect.name == "postgresql":
        statement = postgresql.insert(table)
        excluded = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=[table.c.meter, table.c.reading_type, table.c.interval_end],
            set_={"value": excluded.value, "qualities": excluded.qualities, "message_id": excluded.message_id},
            where=table.c.value.is_(None) & excluded.value.is_not(None))
    if engine.dialect.name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[table.c.meter, table.c.reading_type, table.c.interval_end],
            set_={"value": lite.excluded.value, "qualities": lite.excluded.qualities,
                  "message_id": lite.excluded.message_id},
            where=table.c.value.is_(None) & lite.excluded.value.is_not(None))
    raise CimError(f"the legacy database must be SQLite or PostgreSQL, not {engine.dialect.name}")


def integrate(engine: Engine, xml: bytes, *, expected_id: str | None = None, schemas: Schemas | None = None,
              now: datetime) -> Integrated:
    """Load one message into the legacy database (see the module docstring for the outcomes)."""
    parsed = parse_message(xml, schemas)
    if expected_id is not None and parsed.message_id != expected_id:
        raise InvalidMessage(f"the Header's MessageID {parsed.message_id} is not the outbox's {expected_id}")
    if not parsed.rows:
        detail = f" ({parsed.skipped} entries without them)" if parsed.skipped else ""
        raise Discarded(f"{parsed.noun} message carries no readings, load-curve or event identifiers{detail}")
    if parsed.skipped:
        logger.warning("CIM %s: %d entries without their identifiers left out", parsed.message_id, parsed.skipped)
    ensure_schema(engine)
    new_rows = 0
    with storage_errors(engine), engine.begin() as connection:
        message = {
            "message_id": parsed.message_id, "noun": parsed.noun, "correlation_id": parsed.correlation_id,
            "source": parsed.source, "set_id": parsed.set_id, "part": parsed.part, "parts": parsed.parts,
            "xml": xml.decode("utf-8"), "received_at": now,
        }
        # Counted from RETURNING: psycopg 3 with SQLAlchemy 2.1 reports rowcount -1 for these inserts.
        returning = _insert_ignore(engine, CIM_MESSAGES).returning(CIM_MESSAGES.c.message_id)
        new_message = len(connection.execute(returning, message).all()) == 1
        for table, rows in ((LEGACY_INTERVALS, parsed.intervals), (LEGACY_READINGS, parsed.readings),
                            (LEGACY_EVENTS, parsed.events)):
            if rows:
                with_id = [{**row, "message_id": parsed.message_id} for row in rows]
                statement = _insert_or_fill(engine) if table is LEGACY_INTERVALS else _insert_ignore(engine, table)
                new_rows += len(connection.execute(statement.returning(table.c.message_id), with_id).all())
    return Integrated(parsed.message_id, new_message, new_rows, parsed.rows, parsed.skipped)


def legacy_counts(engine: Engine) -> dict[str, int]:
    """Rows per legacy table (for status and tests)."""
    ensure_schema(engine)
    with storage_errors(engine), engine.connect() as connection:
        return {
            table.name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
            for table in (CIM_MESSAGES, LEGACY_INTERVALS, LEGACY_READINGS, LEGACY_EVENTS)
        }
