"""The MQTT outbox: messages queued in the transaction that stores what they report, topics, message ids.

Topic tree (``hes/`` prefix)::

    hes/<DC id or "p2p">/<meter serial>/alarm     events of criticality alarm or critical; head-end alarms
    hes/<DC id or "p2p">/<meter serial>/event     events at or above HES_MQTT_MIN_CRITICALITY, below alarm
    hes/<DC id or "p2p">/<meter serial>/command   results of disconnect, reconnect and clock sync orders
    hes/<DC id>/concentrator/alarm|event          the concentrator's own events

A message's id is a hash of the identity of what it reports (an event's meter, log, code and
time; an order number), so the same event stored by a read, a plan and a push is queued once, and
subscribers can drop the duplicates QoS 1 allows by that id (it is in every payload).
``install()`` registers ``on_stored`` with ``hes.db.stored``, so events stored by reads and plans
are queued by themselves in the storing transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from hes.db.models import Meter, utcnow
from hes.db.readings import EventRow
from hes.db.stored import StoredBatch, add_listener
from hes.devicetypes import DeviceType, DeviceTypeError, catalogue, default_type
from hes.events.catalog import Catalog, CatalogError, Criticality, EventDefinition, default_catalog, load_catalog
from hes.events.models import MqttMessage

__all__ = [
    "TOPIC_PREFIX",
    "OutboxMessage",
    "command_message",
    "event_message",
    "event_messages",
    "install",
    "message_id",
    "min_criticality",
    "on_stored",
    "order_alarm_message",
    "queue",
    "topic",
]

logger = logging.getLogger(__name__)

TOPIC_PREFIX = "hes"
_TABLE = cast(Table, MqttMessage.__table__)


def _level(text: str) -> str:
    # One topic level: MQTT forbids the wildcards in names, and "/" would add levels.
    cleaned = "".join("_" if ch in "/+#\x00" else ch for ch in text.strip())
    return cleaned or "_"


def topic(concentrator: str | None, device: str, kind: str) -> str:
    """``hes/<dc or p2p>/<device>/<kind>``."""
    return "/".join((TOPIC_PREFIX, _level(concentrator or "p2p"), _level(device), kind))


def message_id(*identity: object) -> str:
    """A stable id (32 hex digits) for what a message reports."""
    text = "\x1f".join(str(part) for part in identity)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to queue: its id, topic, kind (alarm, event, command) and JSON payload."""

    message_id: str
    topic: str
    kind: str
    payload: dict[str, Any]

    def body(self) -> str:
        # default=str: a value read from a meter (a Decimal, a date) never keeps a message from being queued.
        return json.dumps({"message_id": self.message_id, "kind": self.kind, **self.payload}, sort_keys=True,
                          default=str)


def min_criticality(default: Criticality = Criticality.WARNING) -> Criticality:
    """``HES_MQTT_MIN_CRITICALITY`` (events below it are stored, not published); a bad value keeps the default.

    ``hes.config.load_settings`` reports a bad value as a configuration error; here, inside a
    storing transaction, a bad setting must not lose the data, so the default applies.
    """
    text = os.environ.get("HES_MQTT_MIN_CRITICALITY", "").strip()
    if not text:
        return default
    try:
        return Criticality.parse(text)
    except CatalogError:
        return default


def event_message(definition: EventDefinition, serial: str, concentrator: str | None, log_obis: str,
                  when: datetime, *, source: str, device: str = "meter") -> OutboxMessage:
    """The message for one event (alarm topic from criticality alarm upwards, else event)."""
    kind = "alarm" if definition.criticality >= Criticality.ALARM else "event"
    where = "concentrator" if device == "concentrator" else serial
    ident = message_id("event", device, serial, log_obis, definition.code, _iso(when))
    payload: dict[str, Any] = {
        "device": device, "meter": None if device == "concentrator" else serial, "concentrator": concentrator,
        "log": definition.log, "log_obis": log_obis, "code": definition.code, "name": definition.name,
        "criticality": definition.criticality.label, "time": _iso(when), "source": source,
    }
    return OutboxMessage(ident, topic(concentrator, where, kind), kind, payload)


def command_message(order_number: str, serial: str, concentrator: str | None, command: str, state: str,
                    detail: str | None, who: str, values: dict[str, Any] | None = None) -> OutboxMessage:
    """The result of an order on the meter's command topic."""
    payload = {"meter": serial, "concentrator": concentrator, "order": order_number, "command": command,
               "result": state, "detail": detail, "user": who, "values": values or {}, "time": _iso(utcnow())}
    return OutboxMessage(message_id("command", order_number), topic(concentrator, serial, "command"), "command",
                         payload)


def order_alarm_message(definition: EventDefinition, order_number: str, serial: str, concentrator: str | None,
                        detail: str, who: str) -> OutboxMessage:
    """A head-end alarm about an order (e.g. the relay not where the order wanted it) on the meter's alarm topic."""
    payload: dict[str, Any] = {
        "device": "head-end", "meter": serial, "concentrator": concentrator, "log": definition.log,
        "code": definition.code, "name": definition.name, "criticality": definition.criticality.label,
        "order": order_number, "detail": detail, "user": who, "time": _iso(utcnow()), "source": "command",
    }
    return OutboxMessage(message_id("order-alarm", order_number, definition.code),
                         topic(concentrator, serial, "alarm"), "alarm", payload)


def queue(connection: Connection, messages: Iterable[OutboxMessage]) -> int:
    """Queue ``messages`` on ``connection`` (the caller's transaction); returns how many were new."""
    unique = {m.message_id: m for m in reversed(list(messages))}  # the first of duplicates wins
    now = utcnow()
    rows = [
        {"message_id": m.message_id, "topic": m.topic, "kind": m.kind, "payload": m.body(), "created_at": now,
         "attempts": 0}
        for m in reversed(unique.values())
    ]
    if not rows:
        return 0
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = (insert(_TABLE).values(rows).on_conflict_do_nothing(index_elements=[_TABLE.c.message_id])
                 .returning(_TABLE.c.message_id))
    return len(connection.execute(statement).all())


def _routes(connection: Connection, meter_ids: Sequence[int]) -> dict[int, tuple[str, str | None, DeviceType]]:
    """Each meter's serial, concentrator and device type (whose code tables name its events)."""
    found = connection.execute(
        select(Meter.id, Meter.serial, Meter.concentrator_id, Meter.device_type, Meter.make, Meter.model,
               Meter.firmware).where(Meter.id.in_(list(meter_ids))))
    types = catalogue(connection)
    out = {}
    for ident, serial, dc, name, make, model, firmware in found:
        try:
            kind = types.for_meter(name, make, model, firmware)
        except DeviceTypeError:
            kind = default_type()
        out[ident] = (serial, dc, kind)
    return out


def event_messages(connection: Connection, rows: Sequence[EventRow], *, source: str,
                   catalog: Catalog | None = None, threshold: Criticality | None = None) -> list[OutboxMessage]:
    """Messages for the stored meter events at or above ``threshold`` (default ``min_criticality()``), each named
    and graded by its meter's device type's code table where it has one, else by the event table."""
    catalog = catalog or load_catalog()
    threshold = min_criticality() if threshold is None else threshold
    routes = _routes(connection, sorted({row.meter_id for row in rows}))
    tables: dict[str, Catalog] = {}

    def table(meter_id: int) -> Catalog:
        route = routes.get(meter_id)
        if route is None:
            return catalog
        kind = route[2]
        known = tables.get(kind.name)
        if known is None:
            known = tables[kind.name] = kind.event_catalog(catalog)
        return known

    graded = [(row, table(row.meter_id).lookup_obis(row.log_obis, row.event_code)) for row in rows]
    graded = [(row, definition) for row, definition in graded if definition.criticality >= threshold]
    if not graded:
        return []
    messages = []
    for row, definition in graded:
        serial, dc, _kind = routes.get(row.meter_id, (f"meter-{row.meter_id}", None, default_type()))
        messages.append(event_message(definition, serial, dc, row.log_obis, row.event_time, source=source))
    return messages


def on_stored(connection: Connection, batch: StoredBatch) -> None:
    """``hes.db.stored`` listener: queue the new events that are worth publishing."""
    if not batch.events:
        return
    try:
        catalog = load_catalog()
    except CatalogError as exc:
        # The data must be stored even when the event table is broken: defaults, and say so.
        logger.error("event table unusable, defaults used for MQTT: %s", exc)
        catalog = default_catalog()
    queue(connection, event_messages(connection, batch.events, source=batch.correlation_id or "store",
                                     catalog=catalog))


def install() -> None:
    """Queue events stored anywhere in this process (idempotent)."""
    add_listener(on_stored)
