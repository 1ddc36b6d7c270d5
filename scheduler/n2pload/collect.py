"""N2PLoad executors: collect each meter's load profile and daily values after its watermark, idempotently.

``collect_profile`` and ``collect_daily`` follow ``scheduler.contract.Executor``: one work item (one
meter, one command), one ``ItemOutcome``. ``collect_meter`` takes a meter's profile and daily items
together and reads both in ONE session; the engine calls it (``N2PLoadExecutor.many``) when it
claims a meter's two items together, as it does in a pass.

For a meter behind a data concentrator (DC) the read is "concentrated": an association with the
DC's logical device for that meter (the DC's security), answered from what the DC collected on its
own schedule. A point-to-point meter is read directly. Each read is one session: association, a GET
of each profile's buffer with a range selective access (watermark, end], release. The profile's
capture objects, capture period and the registers' scalers are read once and kept with the
watermark (``shape``), read again when a buffer no longer matches them.

What the answer does to the database, in ONE transaction (so a crash leaves either all or nothing;
meters whose sessions end together share it, ``hes.db.group_commit``, as do the counter
reservations of sessions that start together):

- the rows are stored through ``hes.db.readings`` (idempotent: a row stored twice is stored once);
- the watermark moves over the contiguous prefix of what came back: a gap inside the returned data
  stops it before the gap, the gap is recorded (``collection_gaps``) and the first interval after
  it carries ``QUALITY_AFTER_GAP``; the next pass asks from the watermark again, so the gap is
  asked for again. A gap still missing after ``GAP_GIVE_UP_ATTEMPTS`` passes is declared lost and
  the watermark moves over it (WARN says so: the data may still be read locally), and the store
  listeners are told its intervals are missing (``hes.db.stored``; the CIM outbox sends them
  without a value, with ReadingQuality 2.5.259);
- the meter's reachability as collection sees it (``meter_collection``), the DC's last contact.

Outcomes: EXE (new data, nothing to remark), WARN (new data with observations: gaps, status flags,
undated rows; or the DC returned nothing newer than the watermark, i.e. it did not reach the meter:
the meter's reachability is recorded), FAIL (the session failed; ``retryable`` from the typed
error; a DC that cannot be reached at all gives ``concentrator_unreachable``). No order or audit
row per read: the engine records each item's result, and N2PLoad runs for every meter every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.orm import Session

from hes.crash import crash_point
from hes.db.counters import COUNTER_LIMIT, CounterExhausted, reserve_counters
from hes.db.engine import StorageError, storage_errors
from hes.db.group_commit import for_loop
from hes.db.models import IntervalValue, Meter
from hes.db.readings import IntervalRow, MissingInterval, RegisterRow, store_many
from hes.db.stored import StoredBatch, correlation, current_correlation, notify
from hes.db.stored import listeners as stored_listeners
from hes.model import CounterReservation, MeterSecurity, MeterTarget, ViaConcentrator
from hes.reads import (
    DAILY_VALUES,
    LOAD_PROFILE,
    QUALITY_STATUS_FLAGGED,
    QUALITY_TIME_FILLED,
    _deviation_of,
    _failure,
    _integer,
    _range_value,
    counter_budget,
    received_device,
)
from hes.session import AttributeRef, MeterSession, open_session
from protocols.axdr import Data, DataTag
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, ScalerUnit, parse_profile_buffer
from protocols.cosem.profile import ColumnRole, ProfileRow
from protocols.errors import DecodeError, DlmsError, ProtocolError, SecurityError, ServiceError, TransportError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import RangeDescriptor
from scheduler.collection_models import CollectionGap
from scheduler.contract import ExecutionContext, ItemOutcome, WorkItem

__all__ = [
    "DEFAULT_LOOKBACK",
    "GAP_GIVE_UP_ATTEMPTS",
    "MAX_SPAN",
    "QUALITY_AFTER_GAP",
    "PassMeter",
    "N2PLoadExecutor",
    "collect_daily",
    "collect_meter",
    "collect_profile",
    "pass_meters",
]

logger = logging.getLogger(__name__)

#: Quality flag (bitmask, beside ``hes.reads.QUALITY_*``): the intervals just before this one were
#: missing from what the field returned when it was collected. Cleared once the gap is filled.
QUALITY_AFTER_GAP = 0x04
#: A meter's first collection (no watermark, no start in the work item) starts at its registration,
#: or this long before now when that is earlier.
DEFAULT_LOOKBACK = timedelta(days=1)
#: The most one read asks for (a backlog longer than this is collected over several passes).
MAX_SPAN = timedelta(days=31)
#: Passes that ask for a gap before it is declared lost and the watermark moves over it.
GAP_GIVE_UP_ATTEMPTS = 6

_ONE_SECOND = timedelta(seconds=1)
_DEFAULT_PERIOD = 900


@dataclass(frozen=True, slots=True)
class PassMeter:
    """A meter an N2PLoad pass collects: what a ``WorkItem`` needs about it."""

    meter_id: int
    serial: str
    concentrator_id: str | None


def pass_meters(engine: Engine, *, concentrator: str | None = None) -> list[PassMeter]:
    """The commissioned meters of a pass (of one DC, or all), grouped by DC, then point-to-point ones."""
    query = select(Meter.id, Meter.serial, Meter.concentrator_id).where(Meter.state == "commissioned")
    if concentrator is not None:
        query = query.where(Meter.concentrator_id == concentrator)
    with storage_errors(engine), Session(engine) as session:
        rows = session.execute(query).all()
    meters = [PassMeter(int(ident), serial, dc) for ident, serial, dc in rows]
    meters.sort(key=lambda m: (m.concentrator_id is None, m.concentrator_id or "", m.serial))
    return meters


# --- what is read, and how it is kept ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    obis: ObisCode
    command: Literal["profile", "daily"]
    name: str


_PROFILE = _Kind(LOAD_PROFILE, "profile", "load profile")
_DAILY = _Kind(DAILY_VALUES, "daily", "daily values")
_KINDS = {"profile": _PROFILE, "daily": _DAILY}


@dataclass(frozen=True, slots=True)
class _Shape:
    """A profile's columns (with scalers), capture period, and the clock column to restrict ranges on."""

    columns: tuple[ProfileColumn, ...]
    period: int
    clock: CaptureObjectDefinition

    @property
    def plain(self) -> list[ProfileColumn]:
        # Parsed without scalers: storage keeps the raw value and its scaler.
        return [replace(c, scaler_unit=None) for c in self.columns]

    def encode(self) -> str:
        return json.dumps({"period": self.period, "columns": [
            [c.capture.class_id, str(c.capture.logical_name), c.capture.attribute_index, c.capture.data_index,
             None if c.scaler_unit is None else [c.scaler_unit.scaler, int(c.scaler_unit.unit)]]
            for c in self.columns]}, separators=(",", ":"))


_decoded_shapes: dict[str, tuple[_Shape, list[ProfileColumn]]] = {}


def _decode_shape(text: str | None) -> tuple[_Shape, list[ProfileColumn]] | None:
    """The shape kept with a watermark (interned: a fleet has few distinct shapes), None if unusable."""
    if text is None:
        return None
    known = _decoded_shapes.get(text)
    if known is not None:
        return known
    try:
        data = json.loads(text)
        columns = []
        for class_id, obis, attribute, index, su in data["columns"]:
            capture = CaptureObjectDefinition(int(class_id), ObisCode.parse(obis), int(attribute), int(index))
            column = ProfileColumn.of(capture, None if su is None else ScalerUnit(int(su[0]), int(su[1])))
            columns.append(column)
        clocks = [c.capture for c in columns if c.role is ColumnRole.CLOCK]
        shape = _Shape(tuple(columns), int(data["period"]), clocks[0])
    except (ValueError, KeyError, TypeError, IndexError, DlmsError):
        return None
    if len(_decoded_shapes) > 10_000:
        _decoded_shapes.clear()
    entry = _decoded_shapes[text] = (shape, shape.plain)
    return entry


async def _read_shape(session: MeterSession, obis: ObisCode) -> _Shape:
    """Capture objects, capture period and the scalers of the captured registers, from the device."""
    capture, period_data = await session.get_many([AttributeRef(7, obis, 3), AttributeRef(7, obis, 4)])
    if isinstance(capture, ServiceError):
        raise capture
    if capture.tag != DataTag.ARRAY:
        raise DecodeError(f"{obis} capture objects: expected an array")
    definitions = [CaptureObjectDefinition.from_data(item) for item in capture.value]
    period = 0 if isinstance(period_data, ServiceError) else _integer(period_data, f"{obis} capture period")
    clocks = [d for d in definitions if d.class_id == 8 and d.attribute_index == 2]
    if not clocks:
        raise ProtocolError(f"{obis} captures no clock: it cannot be read by time range")
    wanted = [(i, d) for i, d in enumerate(definitions) if d.class_id in (3, 4) and d.attribute_index == 2]
    units: dict[int, ScalerUnit] = {}
    if wanted:
        answers = await session.get_many([AttributeRef(d.class_id, d.logical_name, 3) for _, d in wanted])
        for (i, _), answer in zip(wanted, answers):
            if isinstance(answer, Data):
                units[i] = ScalerUnit.from_data(answer)
    columns = tuple(ProfileColumn.of(d, units.get(i)) for i, d in enumerate(definitions))
    return _Shape(columns, period, clocks[0])


# --- one meter's collection ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    meter_id: int
    serial: str
    dc_id: str | None
    start: datetime
    end: datetime
    first: bool
    shape_text: str | None
    open_gaps: list[tuple[int, datetime, datetime, int, int]]  # id, first, last, missing, attempts
    lost_gaps: set[datetime]
    received_key: str
    received_sap: int
    last_received: int | None


@dataclass(slots=True)
class _Progress:
    associated: bool = False
    #: The last invocation counter the device sent (its replay floor, stored with the data).
    received: int | None = None


@dataclass(slots=True)
class _Read:
    rows: list[ProfileRow]
    shape: _Shape
    shape_changed: bool


class _Refused(Exception):
    """A check failed before anything was contacted: the FAIL reason (internal)."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _periods(span: timedelta, seconds: int) -> int:
    """How many capture periods ``span`` is, to the nearest whole one."""
    return (int(span.total_seconds()) + seconds // 2) // seconds


# Driver-level SQL (one string per statement, ``?`` placeholders; ``%s`` on PostgreSQL): compiling
# SQLAlchemy statements per meter costs more than the database work, as ``hes.db.readings`` found.
_PLAN_SQL = (
    "SELECT m.id, m.serial, m.state, m.concentrator_id, m.logical_device, m.dc_physical_address, m.host, "
    "m.serial_device, m.client_sap, m.created_at, w.collected_until, w.shape, w.period_seconds, c.id, c.host, "
    "c.port, c.client_sap, c.wport, c.network_id, c.updated_at, "
    "(SELECT COUNT(*) FROM collection_gaps g WHERE g.meter_id = m.id AND g.profile_obis = ? "
    "AND g.state IN ('open', 'lost')) "
    "FROM meters m LEFT JOIN collection_watermarks w ON w.meter_id = m.id AND w.profile_obis = ? "
    "LEFT JOIN concentrators c ON c.id = m.concentrator_id WHERE m.id = ?"
)
_GAPS_SQL = ("SELECT id, first_missing, last_missing, missing, attempts, state FROM collection_gaps "
             "WHERE meter_id = ? AND profile_obis = ? AND state IN ('open', 'lost')")
_RECEIVED_SQL = "SELECT last_received FROM invocation_counters WHERE device = ? AND client_sap = ?"
_WATERMARK_SQL = (
    "INSERT INTO collection_watermarks (meter_id, profile_obis, collected_until, period_seconds, shape, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (meter_id, profile_obis) DO UPDATE SET "
    "collected_until = CASE WHEN collection_watermarks.collected_until < excluded.collected_until "
    "THEN excluded.collected_until ELSE collection_watermarks.collected_until END, "
    "period_seconds = COALESCE(excluded.period_seconds, collection_watermarks.period_seconds), "
    "shape = COALESCE(excluded.shape, collection_watermarks.shape), updated_at = excluded.updated_at"
)
_REACHED_SQL = (
    "INSERT INTO meter_collection (meter_id, reachable, last_contact, last_attempt, unreachable_since, misses, reason) "
    "VALUES (?, ?, ?, ?, NULL, 0, NULL) ON CONFLICT (meter_id) DO UPDATE SET reachable = excluded.reachable, "
    "last_contact = excluded.last_contact, last_attempt = excluded.last_attempt, unreachable_since = NULL, "
    "misses = 0, reason = NULL"
)
_MISSED_SQL = (
    "INSERT INTO meter_collection (meter_id, reachable, last_contact, last_attempt, unreachable_since, misses, reason) "
    "VALUES (?, ?, NULL, ?, ?, 1, ?) ON CONFLICT (meter_id) DO UPDATE SET reachable = excluded.reachable, "
    "last_attempt = excluded.last_attempt, "
    "unreachable_since = COALESCE(meter_collection.unreachable_since, excluded.unreachable_since), "
    "misses = meter_collection.misses + 1, reason = excluded.reason"
)
_ATTEMPT_SQL = (
    "INSERT INTO meter_collection (meter_id, last_attempt, misses, reason) VALUES (?, ?, 0, ?) "
    "ON CONFLICT (meter_id) DO UPDATE SET last_attempt = excluded.last_attempt, "
    "reason = COALESCE(excluded.reason, meter_collection.reason)"
)
_RECEIVED_UPSERT_SQL = (
    "INSERT INTO invocation_counters (device, client_sap, next_counter, last_received, updated_at) "
    "VALUES (?, ?, 1, ?, ?) ON CONFLICT (device, client_sap) DO UPDATE SET last_received = CASE WHEN "
    "invocation_counters.last_received IS NULL OR invocation_counters.last_received < excluded.last_received "
    "THEN excluded.last_received ELSE invocation_counters.last_received END, updated_at = excluded.updated_at"
)
#: ``hes.db.counters.reserve_counters``'s statement (minimum 1), driver-level: move ``next_counter`` on by the
#: count and return the new limit; the row lock (PostgreSQL) or write lock (SQLite) keeps ranges disjoint.
_RESERVE_SQL = (
    "INSERT INTO invocation_counters (device, client_sap, next_counter, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (device, client_sap) DO UPDATE SET next_counter = CASE WHEN invocation_counters.next_counter >= 1 "
    "THEN invocation_counters.next_counter ELSE 1 END + ?, updated_at = excluded.updated_at RETURNING next_counter"
)
_UNRESERVE_SQL = "UPDATE invocation_counters SET next_counter = next_counter - ? WHERE device = ? AND client_sap = ?"
_DC_CONTACT_SQL = "UPDATE concentrators SET reachable = ?, last_contact = ?, last_attempt = ? WHERE id = ?"
_DC_ATTEMPT_SQL = "UPDATE concentrators SET reachable = ?, last_attempt = ? WHERE id = ?"


def _sql(connection: Connection, statement: str, parameters: Sequence[Any]) -> Any:
    """Run ``statement`` on the DBAPI cursor of ``connection``, inside its transaction; the cursor, to fetch from.

    Below SQLAlchemy's result objects on purpose: a collection runs about ten of these per meter, and
    their set-up cost more than the statements themselves.
    """
    if connection.dialect.name == "postgresql":
        statement = statement.replace("?", "%s")
    cursor = connection.connection.cursor()
    cursor.execute(statement, tuple(parameters))
    return cursor


def _sql_many(connection: Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """``_sql`` for many parameter rows: one executemany."""
    if connection.dialect.name == "postgresql":
        statement = statement.replace("?", "%s")
    connection.connection.cursor().executemany(statement, [tuple(row) for row in rows])


def _to_db(connection: Connection, moment: datetime | None) -> Any:
    """An aware instant as ``UtcDateTime`` stores it: SQLite's DATETIME text of the UTC instant, else as is."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(" ", "microseconds") if connection.dialect.name == "sqlite" else utc


def _from_db(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _plan_in(connection: Connection, context: ExecutionContext, item: WorkItem, kind: _Kind,
             now: datetime) -> tuple[_Plan, MeterTarget | None]:
    """What to ask ``item``'s meter for (``kind``), and for a DC meter its target; ``_Refused`` if it cannot be."""
    obis = str(kind.obis)
    row = _sql(connection, _PLAN_SQL, (obis, obis, item.meter_id)).fetchone()
    if row is None:
        raise _Refused(f"meter {item.serial} is not registered")
    (meter_id, serial, state, dc_id, logical_device, physical, host, serial_device, client_sap, created,
     collected_until, shape_text, known_period, dc_row, dc_host, dc_port, dc_sap, dc_wport, dc_network,
     dc_updated, gap_count) = row
    if state != "commissioned":
        raise _Refused(f"meter {serial} is {state}, not commissioned: it is not collected")
    if dc_id is None and host is None and serial_device is None:
        raise _Refused(f"meter {serial} is linked to no concentrator and has no direct address")
    if dc_id is not None and (logical_device is None or physical is None or dc_row is None):
        raise _Refused(f"meter {serial}: its link to concentrator {dc_id} is incomplete")
    open_gaps: list[tuple[int, datetime, datetime, int, int]] = []
    lost_gaps: set[datetime] = set()
    if gap_count:
        for ident, first_missing, last_missing, missing, attempts, gap_state in _sql(
                connection, _GAPS_SQL, (meter_id, obis)).fetchall():
            first_at, last_at = _from_db(first_missing), _from_db(last_missing)
            assert first_at is not None and last_at is not None  # NOT NULL columns
            if gap_state == "open":
                open_gaps.append((int(ident), first_at, last_at, int(missing), int(attempts)))
            else:
                lost_gaps.add(first_at)
    # A DC keeps one server invocation counter per logical device: the replay floor is per LD.
    received_key, received_sap = ((serial, client_sap) if dc_id is None
                                  else (received_device(dc_id, logical_device), dc_sap))
    received = _sql(connection, _RECEIVED_SQL, (received_key, received_sap)).fetchone()
    last_received = None if received is None else received[0]
    end = (item.end or now).astimezone(UTC)
    mark = _from_db(collected_until)
    if mark is not None:
        start, first = mark, False
    else:
        # Everything since the meter was registered, and at least the last DEFAULT_LOOKBACK: a first
        # collection that fails (or is never tried, its DC being down) does not let the start slide.
        registered = _from_db(created) or now
        start = (item.start or min(registered, end - DEFAULT_LOOKBACK)).astimezone(UTC)
        first = True
        if kind is _PROFILE and item.start is None:
            # Start on an interval boundary, so the first pass sees whole intervals.
            start -= timedelta(seconds=int(start.timestamp()) % _DEFAULT_PERIOD, microseconds=start.microsecond)
    end = min(end, start + MAX_SPAN)
    if not first and known_period and end - start < timedelta(seconds=int(known_period)):
        # Less than one capture period since the last row: nothing can be new, nothing is asked
        # (an hourly N2PLoad reads the daily values once a day, not every pass).
        end = start
    plan = _Plan(int(meter_id), serial, dc_id, start, end, first, shape_text, open_gaps, lost_gaps,
                 received_key, int(received_sap), None if last_received is None else int(last_received))
    if dc_id is None:
        return plan, None
    route = ViaConcentrator(
        concentrator_id=dc_id, host=dc_host, port=int(dc_port),
        dc_security=_dc_security(context, dc_id, serial, _from_db(dc_updated)), dc_client_sap=int(dc_sap),
        management_wport=int(dc_wport), logical_device=int(logical_device), network_id=int(dc_network),
        physical_address=bytes(physical), mode="concentrated",
    )
    # A concentrated read associates with the DC's logical device, with the DC's security: the
    # meter's own keys are not used (nor decrypted).
    return plan, MeterTarget(serial=serial, route=route, security=MeterSecurity(), client_sap=int(client_sap))


@dataclass(slots=True)
class _Prepared:
    """One meter's plans (one per item, in order) and, for a DC meter with something due, its session's counters."""

    plans: list[_Plan]
    target: MeterTarget | None
    reservation: CounterReservation | None


@dataclass(frozen=True, slots=True)
class _PrepareRequest:
    context: ExecutionContext
    items: Sequence[WorkItem]
    kinds: Sequence[_Kind]
    now: datetime


def _budget(plans: Sequence[_Plan], kinds: Sequence[_Kind]) -> int:
    """Invocation counters for one session reading every due kind (each kind's own budget, summed)."""
    return sum(counter_budget(kind.command, plan.start, plan.end) for plan, kind in zip(plans, kinds, strict=True)
               if plan.end > plan.start)


def _prepare_in(connection: Connection, request: _PrepareRequest) -> _Prepared:
    """The meter's plans and, for a DC meter, its target and counters reserved on ``connection``."""
    plans: list[_Plan] = []
    target: MeterTarget | None = None
    for item, kind in zip(request.items, request.kinds, strict=True):
        plan, target = _plan_in(connection, request.context, item, kind, request.now)
        plans.append(plan)
    count = _budget(plans, request.kinds)
    if target is None or not count:
        return _Prepared(plans, target, None)
    route = target.route
    assert isinstance(route, ViaConcentrator)  # targets are made for DC meters only
    if route.dc_security.policy != "hls-gmac":
        return _Prepared(plans, target, CounterReservation(start=1, limit=2**32))
    dc_id, dc_sap = route.concentrator_id, route.dc_client_sap
    limit = int(_sql(connection, _RESERVE_SQL, (dc_id, dc_sap, 1 + count, _to_db(connection, request.now),
                                                count)).fetchone()[0])
    if limit > COUNTER_LIMIT:
        # Give the range back: this transaction is shared with other meters' reservations and commits.
        _sql(connection, _UNRESERVE_SQL, (count, dc_id, dc_sap))
        raise CounterExhausted(f"invocation counters of {dc_id} (client SAP {dc_sap}) are used up: rekey it")
    return _Prepared(plans, target, CounterReservation(start=limit - count, limit=limit,
                                                       last_received=plans[0].last_received))


def _prepare_work(connection: Connection, requests: Sequence[_PrepareRequest]) -> list[_Prepared | Exception]:
    """``GroupCommit`` work: every request's plans and counters, in one transaction (the reservations committed)."""
    out: list[_Prepared | Exception] = []
    for request in requests:
        try:
            out.append(_prepare_in(connection, request))
        except (_Refused, DlmsError) as exc:
            out.append(exc)
    return out


#: How long a finished read waits for others to share its transaction, and the most that share one.
#: A pass's sessions end a few milliseconds apart: 50 ms gathers tens of meters per commit.
STORE_LINGER = 0.05
STORE_BATCH = 128
#: Sessions starting together share the transaction that reserves their counters (shorter: it delays them).
PREPARE_LINGER = 0.01


async def _prepare(context: ExecutionContext, items: Sequence[WorkItem], kinds: Sequence[_Kind]) -> _Prepared:
    request = _PrepareRequest(context, items, kinds, context.now().astimezone(UTC))
    batcher = for_loop(context.engine, "n2pload-prepare", _prepare_work, linger=PREPARE_LINGER,
                       max_requests=STORE_BATCH)
    answer = await batcher.submit(request)
    if isinstance(answer, Exception):
        raise answer
    assert isinstance(answer, _Prepared)
    return answer


#: The DCs' own security, decrypted once per (master key, DC, DC row version): a pass reads hundreds of
#: meters through one DC. A change of the DC's keys moves ``concentrators.updated_at`` and so the key.
_dc_securities: dict[tuple[str, datetime | None], tuple[object, Engine, MeterSecurity]] = {}


def _dc_security(context: ExecutionContext, dc_id: str, serial: str, version: datetime | None) -> MeterSecurity:
    registry = context.registry
    known = _dc_securities.get((dc_id, version))
    if known is not None and known[0] is registry.master_key and known[1] is registry.engine:
        return known[2]
    route = registry.target_for(serial, mode="concentrated").route
    if not isinstance(route, ViaConcentrator):
        raise _Refused(f"meter {serial} is no longer behind concentrator {dc_id}")
    if len(_dc_securities) > 100_000:
        _dc_securities.clear()
    _dc_securities[dc_id, version] = (registry.master_key, registry.engine, route.dc_security)
    return route.dc_security


def _reserve(context: ExecutionContext, target: MeterTarget, plans: Sequence[_Plan],
             kinds: Sequence[_Kind]) -> CounterReservation:
    """Counters for a point-to-point meter's own association (committed before any is used)."""
    if target.security.policy != "hls-gmac":
        return CounterReservation(start=1, limit=2**32)
    reservation = reserve_counters(context.engine, target.serial, target.client_sap, _budget(plans, kinds))
    return replace(reservation, last_received=plans[0].last_received)


async def _read_one(session: MeterSession, plan: _Plan, kind: _Kind,
                    cached: tuple[_Shape, list[ProfileColumn]] | None) -> _Read:
    changed = cached is None
    shape, plain = cached if cached is not None else (await _read_shape(session, kind.obis), None)
    access = RangeDescriptor(shape.clock, _range_value(plan.start + _ONE_SECOND), _range_value(plan.end))
    raw = await session.get_raw(7, kind.obis, 2, access)
    try:
        rows = parse_profile_buffer(raw, plain or shape.plain, shape.period or None)
    except DecodeError:
        if changed:
            raise
        # The kept shape no longer matches the buffer (reconfigured meter): read it again.
        shape, changed = await _read_shape(session, kind.obis), True
        rows = parse_profile_buffer(raw, shape.plain, shape.period or None)
    return _Read(rows, shape, changed)


async def _read_all(context: ExecutionContext, target: MeterTarget, reservation: CounterReservation,
                    due: Sequence[tuple[int, _Plan, _Kind]], progress: _Progress,
                    reads: list[_Read | None]) -> BaseException | None:
    """Read every due kind in ONE session, into ``reads`` (by position); the error that stopped it, if any.

    What was read before an error is kept (stored as usual); the kinds not read get the error.
    """
    error: BaseException | None = None
    try:
        async with open_session(target, reservation, limits=context.limits, timeouts=context.timeouts,
                                connect=context.connect, pool=context.links) as session:
            progress.associated = True
            try:
                for position, plan, kind in due:
                    reads[position] = await _read_one(session, plan, kind, _decode_shape(plan.shape_text))
            finally:
                progress.received = session.last_received
    except (DlmsError, TimeoutError) as exc:
        error = exc
    return error


async def collect_meter(context: ExecutionContext, items: Sequence[WorkItem]) -> list[ItemOutcome]:
    """N2PLoad for one meter: its ``profile`` and/or ``daily`` items (module docstring), in ONE session.

    One outcome per item, in order. The plans and counters of meters collected at the same time
    share one transaction, and so do their results (``hes.db.group_commit``); each meter's rows,
    watermarks and counters still commit together.
    """
    if not items:
        return []
    if (len({item.meter_id for item in items}) != 1 or len({item.command for item in items}) != len(items)
            or any(item.command not in _KINDS for item in items)):
        raise ValueError("collect_meter takes the profile and/or daily items of one meter, one per command")
    kinds = [_KINDS[item.command] for item in items]
    try:
        prepared = await _prepare(context, items, kinds)
        plans, target, reservation = prepared.plans, prepared.target, prepared.reservation
        due = [(position, plan, kind) for position, (plan, kind) in enumerate(zip(plans, kinds, strict=True))
               if plan.end > plan.start]
        if not due:
            return [ItemOutcome("EXE") for _ in items]
        if target is None or reservation is None:
            target = context.registry.target_for(plans[0].serial, mode="concentrated")
            reservation = _reserve(context, target, plans, kinds)
    except _Refused as refused:
        return [ItemOutcome("FAIL", reason=f"{refused} (a retry will not help)") for _ in items]
    except StorageError:
        raise
    except DlmsError as exc:
        hint = "a retry can help" if exc.retryable else "a retry will not help"
        return [ItemOutcome("FAIL", reason=f"{exc} ({hint})", retryable=exc.retryable) for _ in items]

    progress = _Progress()
    reads: list[_Read | None] = [None] * len(items)
    async with _device_lock(target):
        error = await _read_all(context, target, reservation, due, progress, reads)
    crash_point("n2pload-before-store")
    now = context.now().astimezone(UTC)
    outcomes: list[ItemOutcome | None] = [None] * len(items)
    stores: list[tuple[int, _Assembled]] = []
    for position, plan, kind in due:
        read = reads[position]
        if read is None:
            continue
        assembled = _assemble(plan, kind, read)
        if isinstance(assembled, ItemOutcome):
            outcomes[position] = assembled
        else:
            stores.append((position, assembled))
    if stores:
        request = _StoreRequest([a for _, a in stores], progress.received, now,
                                current_correlation())
        batcher = for_loop(context.engine, "n2pload-store", _store_work, linger=STORE_LINGER,
                           max_requests=STORE_BATCH)
        for (position, _), outcome in zip(stores, await batcher.submit(request), strict=True):
            outcomes[position] = outcome
    failure = error or ProtocolError("the read gave no result")
    for position, plan, kind in due:
        if outcomes[position] is None:
            outcomes[position] = _failed(context, plan, kind, target, failure, progress.associated, now)
    return [outcome if outcome is not None else ItemOutcome("EXE") for outcome in outcomes]


def _failed(context: ExecutionContext, plan: _Plan, kind: _Kind, target: MeterTarget, exc: BaseException,
            associated: bool, now: datetime) -> ItemOutcome:
    route = target.route
    dc_down = False
    if isinstance(route, ViaConcentrator) and not associated and isinstance(exc, TransportError | TimeoutError):
        # Concentrated reads are answered by the DC itself: no answer before the association is the DC's silence.
        dc_down = True
        reason = f"concentrator {route.concentrator_id} is unreachable: {exc} (a retry can help)"
        retryable = True
    else:
        reason, retryable, dc_state = _failure(exc, target, associated)
        dc_down = dc_state is False
    if isinstance(route, ViaConcentrator) and isinstance(exc, SecurityError):
        # Keys changed without the DC row saying so: read them again next time.
        for key in [k for k in _dc_securities if k[0] == route.concentrator_id]:
            _dc_securities.pop(key, None)
    engine = context.engine
    with storage_errors(engine), engine.begin() as connection:
        at = _to_db(connection, now)
        if isinstance(route, ViaConcentrator):
            if dc_down:
                _sql(connection, _DC_ATTEMPT_SQL, (False, at, route.concentrator_id))
            else:
                _sql(connection, _DC_CONTACT_SQL, (True, at, at, route.concentrator_id))
        _sql(connection, _ATTEMPT_SQL, (plan.meter_id, at, reason))
        if plan.first:
            # The first attempt fixes where collection starts: a later success backfills from there.
            _sql(connection, _WATERMARK_SQL, (plan.meter_id, str(kind.obis), _to_db(connection, plan.start), None,
                                              None, at))
    return ItemOutcome("FAIL", reason=reason, retryable=retryable, concentrator_unreachable=dc_down)


# --- turning the answer into rows, gaps and a watermark -------------------------------------------------------


@dataclass(slots=True)
class _Gap:
    first: datetime
    last: datetime
    missing: int


@dataclass(slots=True)
class _Assembled:
    """One kind's answer made into rows, gaps, a watermark and observations (no database yet)."""

    plan: _Plan
    kind: _Kind
    read: _Read
    intervals: list[IntervalRow]
    registers: list[RegisterRow]
    observations: list[str]
    found: list[_Gap]
    given_up: list[_Gap]
    times: list[datetime]
    period: int
    mark: datetime
    channels: list[tuple[str, int]]


def _corrupted(kind: _Kind, obis: str) -> ItemOutcome:
    return ItemOutcome("FAIL", reason=f"corrupted answer: {kind.name} {obis}: a value is not an integer "
                                      "(a retry will not help)")


#: Capture times in UTC by the parser's (local) capture time; bounded like the parser's own cache.
_UTC_TIMES: dict[datetime, datetime] = {}
_UTC_TIMES_MAX = 16384
_make_interval = functools.partial(tuple.__new__, IntervalRow)
_INT_ONLY = frozenset((int,))


def _profile_rows(meter_id: int, times: list[datetime], by_time: dict[datetime, ProfileRow],
                  specs: list[tuple[int, str, int, int, int]],
                  after_gap: set[datetime]) -> tuple[list[IntervalRow], int, int] | None:
    """``_assemble``'s interval rows, flagged and power-failure counts, built column by column (the loops in C).

    Only for the usual buffer, where every channel's every value is an integer; None otherwise
    (a missing or corrupted value), and the row-by-row loop decides. Same rows, same order.
    """
    rows = [by_time[at] for at in times]
    columns = []
    for i, _, _, _, _ in specs:
        column = [row.values[i] for row in rows]
        if column and set(map(type, column)) != _INT_ONLY:
            return None
        columns.append(column)
    statuses = [row.status for row in rows]
    flagged = power = 0
    qualities: Iterable[int] = itertools.repeat(0)
    if any(statuses) or after_gap or any(row.time_filled for row in rows):
        qualities = [(QUALITY_STATUS_FLAGGED if row.status else 0) | (QUALITY_TIME_FILLED if row.time_filled else 0)
                     | (QUALITY_AFTER_GAP if at in after_gap else 0) for at, row in zip(times, rows, strict=True)]
        flagged = sum(1 for status in statuses if status)
        power = sum(1 for status in statuses if status and status & 0x80)
    per_channel = [
        list(map(_make_interval, zip(itertools.repeat(meter_id), itertools.repeat(obis), itertools.repeat(attribute),
                                     times, column, itertools.repeat(scaler), itertools.repeat(unit), statuses,
                                     qualities)))
        for (_, obis, attribute, scaler, unit), column in zip(specs, columns, strict=True)]
    if len(per_channel) == 1:
        return per_channel[0], flagged, power
    return list(itertools.chain.from_iterable(zip(*per_channel, strict=True))), flagged, power


def _assemble(plan: _Plan, kind: _Kind, read: _Read) -> _Assembled | ItemOutcome:
    """The rows to store, the gaps, where the watermark goes, and what to say (a FAIL for a corrupted answer)."""
    shape = read.shape
    period = shape.period or (86400 if kind is _DAILY else _DEFAULT_PERIOD)
    channels = [(i, c) for i, c in enumerate(shape.columns) if c.role is ColumnRole.VALUE]
    observations: list[str] = []
    by_time: dict[datetime, ProfileRow] = {}
    undated = 0
    start, end = plan.start, plan.end
    in_utc = _UTC_TIMES
    if len(in_utc) > _UTC_TIMES_MAX:
        in_utc.clear()
    for row in read.rows:
        at = row.time
        if at is None:
            undated += 1
            continue
        if at.tzinfo is not UTC:
            # First: comparing and hashing across time zones costs several times more. Memoised: the
            # parser hands the same datetime objects to every meter of a fleet (their hashes are kept).
            local = at
            at = in_utc.get(local)
            if at is None:
                at = in_utc[local] = local.astimezone(UTC)
        if start < at <= end:
            by_time[at] = row
    times = list(by_time)
    if any(b <= a for a, b in itertools.pairwise(times)):  # a buffer is in time order: sort only when it is not
        times.sort()

    # The contiguous prefix: the watermark stops before the first gap that is not known lost.
    step = timedelta(seconds=period)
    mark = plan.start
    found: list[_Gap] = []
    after_gap: set[datetime] = set()
    given_up: list[_Gap] = []
    if times and (plan.first or times[0] - plan.start <= step) and all(
            b - a == step for a, b in itertools.pairwise(times)):
        mark = times[-1]  # the usual case: every interval there, one after the other
    else:
        open_by_first = {g[1]: g for g in plan.open_gaps}
        blocked = False
        previous = plan.start
        for at in times:
            # Rounded, not truncated: local midnights are 23 or 25 hours apart when daylight saving changes.
            missing = _periods(at - previous, period) - 1
            if missing > 0 and not (plan.first and previous == plan.start):
                gap = _Gap(at - missing * step, at - step, missing)
                found.append(gap)
                after_gap.add(at)
                known = open_by_first.get(gap.first)
                lost = gap.first in plan.lost_gaps or (known is not None and known[4] + 1 >= GAP_GIVE_UP_ATTEMPTS)
                if lost:
                    given_up.append(gap)
                else:
                    blocked = True
            if not blocked:
                mark = at
            previous = at

    intervals: list[IntervalRow] = []
    registers: list[RegisterRow] = []
    flagged = power = 0
    meter_id = plan.meter_id
    specs = []
    for i, column in channels:
        su = column.scaler_unit or ScalerUnit(0, 255)
        specs.append((i, str(column.capture.logical_name), column.capture.attribute_index, su.scaler, int(su.unit)))
    add_interval, add_register = intervals.append, registers.append
    fast = _profile_rows(meter_id, times, by_time, specs, after_gap) if kind is _PROFILE else None
    if fast is not None:
        intervals, flagged, power = fast
        times_left: list[datetime] = []
    else:
        times_left = times
    for at in times_left:
        row = by_time[at]
        status = row.status
        values = row.values
        if kind is _PROFILE:
            quality = (QUALITY_STATUS_FLAGGED if status else 0) | (QUALITY_TIME_FILLED if row.time_filled else 0)
            if after_gap and at in after_gap:
                quality |= QUALITY_AFTER_GAP
            if status:
                flagged += 1
                power += 1 if status & 0x80 else 0
            for i, obis, attribute, scaler, unit in specs:
                raw = values[i]
                if type(raw) is int:
                    add_interval(IntervalRow(meter_id, obis, attribute, at, raw, scaler, unit, status, quality))
                elif raw is not None:
                    return _corrupted(kind, obis)
        else:
            deviation = _deviation_of(row.time) if row.time is not None else None
            for i, obis, _, scaler, unit in specs:
                raw = values[i]
                if type(raw) is int:
                    add_register(RegisterRow(meter_id, obis, at, raw, scaler, unit, deviation))
                elif raw is not None:
                    return _corrupted(kind, obis)

    where = f"concentrator {plan.dc_id}" if plan.dc_id is not None else f"meter {plan.serial}"
    if not times and plan.end - plan.start >= timedelta(seconds=period):
        if plan.dc_id is not None:
            observations.append(f"concentrator {plan.dc_id} returned nothing newer than {_iso(plan.start)}: "
                                f"it has not reached meter {plan.serial} since (asked again next pass)")
        else:
            observations.append(f"meter {plan.serial} returned nothing newer than {_iso(plan.start)}")
    for gap in found:
        fate = "declared lost" if gap in given_up else "asked again next pass"
        observations.append(f"gap: {gap.missing} {kind.name} missing from {_iso(gap.first)} to "
                            f"{_iso(gap.last)} in what {where} returned ({fate})")
    if undated:
        observations.append(f"partial data: {undated} {kind.name} rows without a capture time skipped")
    if flagged:
        detail = f", {power} with a power failure" if power else ""
        observations.append(f"quality: {flagged} intervals with status flags{detail}")
    return _Assembled(plan, kind, read, intervals, registers, observations, found, given_up, times, period, mark,
                      [(obis, attribute) for _, obis, attribute, _, _ in specs])


@dataclass(frozen=True, slots=True)
class _StoreRequest:
    """One session's answers to store: each kind assembled, the DC's last counter seen, when, for which run."""

    kinds: Sequence[_Assembled]
    received: int | None
    now: datetime
    correlation_id: str | None


def _store_work(connection: Connection, requests: Sequence[_StoreRequest]) -> list[list[ItemOutcome]]:
    """``GroupCommit`` work: the rows of every request, then each one's gaps, watermarks and reachability.

    One insert per table for the rows of all the requests of a run (the store listeners, i.e. the
    CIM outbox, told once), then each statement kind once for all (executemany).
    """
    by_correlation: dict[str | None, list[_Assembled]] = {}
    for request in requests:
        by_correlation.setdefault(request.correlation_id, []).extend(request.kinds)
    stored: dict[int, int] = {}
    for correlation_id, assembled in by_correlation.items():
        with correlation(correlation_id):
            counts = store_many(connection, [(a.intervals, a.registers) for a in assembled])
        stored.update((id(a), count) for a, count in zip(assembled, counts, strict=True))
    watermarks: list[tuple[Any, ...]] = []
    reached: list[tuple[Any, ...]] = []
    missed: list[tuple[Any, ...]] = []
    attempted: list[tuple[Any, ...]] = []
    received: list[tuple[Any, ...]] = []
    contacts: dict[str, tuple[Any, ...]] = {}
    out: list[list[ItemOutcome]] = []
    for request in requests:
        now = request.now
        at = _to_db(connection, now)
        outcomes: list[ItemOutcome] = []
        for a in request.kinds:
            plan, kind, read = a.plan, a.kind, a.read
            if a.found or plan.open_gaps:
                _record_gaps(connection, plan, kind, a.found, a.given_up, a.times, a.period, now)
            if kind is _PROFILE and a.given_up and stored_listeners():
                with correlation(request.correlation_id):
                    _tell_missing(connection, plan, a.given_up, a.channels, timedelta(seconds=a.period))
            if a.mark > plan.start or plan.first or read.shape_changed:
                watermarks.append((plan.meter_id, str(kind.obis), _to_db(connection, a.mark), read.shape.period or None,
                                   read.shape.encode() if read.shape_changed else None, at))
            if a.times:
                reached.append((plan.meter_id, True, at, at))
            elif a.observations:
                missed.append((plan.meter_id, False, at, at, a.observations[0]))
            else:
                # Less than one period was asked for: nothing could be new, no news about the meter.
                attempted.append((plan.meter_id, at, None))
            if plan.dc_id is not None:
                contacts[plan.dc_id] = (True, at, at, plan.dc_id)
            state: Literal["EXE", "WARN"] = "WARN" if a.observations else "EXE"
            outcomes.append(ItemOutcome(state, tuple(a.observations), stored=stored[id(a)]))
        if request.received is not None and request.kinds:
            plan = request.kinds[0].plan
            received.append((plan.received_key, plan.received_sap, request.received, at))
        out.append(outcomes)
    for statement, rows in ((_WATERMARK_SQL, watermarks), (_REACHED_SQL, reached), (_MISSED_SQL, missed),
                            (_ATTEMPT_SQL, attempted), (_RECEIVED_UPSERT_SQL, received)):
        if rows:
            _sql_many(connection, statement, rows)
    for row in contacts.values():
        # One write per DC and transaction (a pass reads hundreds of meters through one DC at once).
        _sql(connection, _DC_CONTACT_SQL, row)
    return out


def _tell_missing(connection: Connection, plan: _Plan, given_up: Sequence[_Gap], channels: Sequence[tuple[str, int]],
                  step: timedelta) -> None:
    """Tell the store listeners (the CIM outbox) which intervals the gaps just declared lost leave missing.

    One ``MissingInterval`` per captured channel and missing interval end, in the storing transaction
    and with the run's correlation. A gap known lost before was told then; an interval that another
    read stored meanwhile (an on-demand read, a field import) is not missing and is left out.
    """
    missing: list[MissingInterval] = []
    for gap in given_up:
        if gap.first in plan.lost_gaps:
            continue
        have = {(obis, attribute, _from_db(end)) for obis, attribute, end in connection.execute(
            select(IntervalValue.obis, IntervalValue.attribute, IntervalValue.interval_end).where(
                IntervalValue.meter_id == plan.meter_id, IntervalValue.interval_end >= gap.first,
                IntervalValue.interval_end <= gap.last))}
        for k in range(gap.missing):
            end = gap.first + k * step
            missing.extend(MissingInterval(plan.meter_id, obis, attribute, end) for obis, attribute in channels
                           if (obis, attribute, end) not in have)
    if missing:
        notify(connection, StoredBatch(correlation_id=current_correlation(), missing=missing))


def _record_gaps(connection: Connection, plan: _Plan, kind: _Kind, found: Sequence[_Gap], given_up: Sequence[_Gap],
                 times: Sequence[datetime], period: int, now: datetime) -> None:
    obis = str(kind.obis)
    found_by_first = {g.first: g for g in found}
    seen = set(times)
    last_seen = times[-1] if times else None
    step = timedelta(seconds=period)
    for ident, first, last, _missing, attempts in plan.open_gaps:
        gap = found_by_first.get(first)
        if gap is not None:
            connection.execute(update(CollectionGap).where(CollectionGap.id == ident).values(
                attempts=attempts + 1, last_missing=gap.last, missing=gap.missing,
                state="lost" if gap in given_up else "open", resolved_at=now if gap in given_up else None))
            continue
        # Not missing any more where this read covered it: filled (what is still missing is a new gap).
        if last_seen is not None and last < last_seen and first > plan.start:
            filled = all(first + k * step in seen for k in range(int((last - first) / step) + 1))
            connection.execute(update(CollectionGap).where(CollectionGap.id == ident).values(
                state="filled" if filled else "lost", resolved_at=now))
            if kind is _PROFILE:
                connection.execute(update(IntervalValue).where(
                    IntervalValue.meter_id == plan.meter_id, IntervalValue.interval_end == last + step,
                    IntervalValue.quality.op("&")(QUALITY_AFTER_GAP) != 0,
                ).values(quality=IntervalValue.quality - QUALITY_AFTER_GAP))
    known = {g[1] for g in plan.open_gaps} | plan.lost_gaps
    for gap in found:
        if gap.first in known:
            continue
        lost = gap in given_up
        connection.execute(insert(CollectionGap).values(
            meter_id=plan.meter_id, profile_obis=obis, first_missing=gap.first, last_missing=gap.last,
            missing=gap.missing, state="lost" if lost else "open", attempts=1, detected_at=now,
            resolved_at=now if lost else None))
        if kind is _PROFILE:
            # A row already stored before (another read) keeps its first quality: flag it here.
            connection.execute(update(IntervalValue).where(
                IntervalValue.meter_id == plan.meter_id, IntervalValue.interval_end == gap.last + step,
                IntervalValue.quality.op("&")(QUALITY_AFTER_GAP) == 0,
            ).values(quality=IntervalValue.quality + QUALITY_AFTER_GAP))


# --- one session at a time per logical device ---------------------------------------------------------------


class _KeyedLocks:
    """One asyncio lock per key while someone holds or waits for it (no lock kept for idle keys)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        ident = (id(asyncio.get_running_loop()), key)
        entry = self._locks.get(ident)
        if entry is None:
            entry = self._locks[ident] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(ident, None)


_locks = _KeyedLocks()


def _device_lock(target: MeterTarget) -> contextlib.AbstractAsyncContextManager[None]:
    # A device checks that invocation counters grow: two sessions of one process with the same
    # logical device would interleave their counters, so they take turns.
    route = target.route
    key = f"{route.concentrator_id}#{route.logical_device}" if isinstance(route, ViaConcentrator) else target.serial
    return _locks.hold(key)


# --- the executors -----------------------------------------------------------------------------------------------


async def collect_profile(context: ExecutionContext, item: WorkItem) -> ItemOutcome:
    """N2PLoad for one meter: load profile 1.0.99.1.0.255 intervals after its watermark (module docstring)."""
    (outcome,) = await collect_meter(context, [item])
    return outcome


async def collect_daily(context: ExecutionContext, item: WorkItem) -> ItemOutcome:
    """Daily values 1.0.98.1.0.255 after the meter's daily watermark (module docstring)."""
    (outcome,) = await collect_meter(context, [item])
    return outcome


class N2PLoadExecutor:
    """``profile`` or ``daily`` as the plan engine runs them: a meter's N2PLoad items claimed together
    share one session (``collect_meter``), an item alone is collected alone (``scheduler.contract.GroupExecutor``)."""

    together = "n2pload"

    def __init__(self, command: Literal["profile", "daily"]) -> None:
        self.command = command

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        (outcome,) = await collect_meter(context, [item])
        return outcome

    async def many(self, context: ExecutionContext, items: Sequence[WorkItem]) -> list[ItemOutcome]:
        return await collect_meter(context, items)
