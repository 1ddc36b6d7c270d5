"""Collection reports: completeness of a day's load profile per meter, and devices that stopped sending data.

Completeness (``completeness(engine, day)``): for each meter in service the whole (UTC) day, the
intervals expected (86400 / the profile's capture period, as the meter last said it; 900 s until
a meter was first collected) against the intervals stored (distinct interval ends in
(day 00:00Z, next day 00:00Z], any channel). A day still running counts only the intervals ended
by ``as_of``. Meters commissioned or decommissioned during the day are not judged on a partial day:
they are listed under ``excluded`` with the reason; meters commissioned later, decommissioned
earlier or never commissioned are not in the report.

Silent devices (``silent(engine, since)``): commissioned meters with no interval value, register
reading or event stored (``collected_at``) since then, or that their concentrator's meter table no
longer lists (``hes concentrator sync``), and concentrators with no successful contact
(``concentrators.last_contact``) since then; devices never heard from are included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from hes.db.engine import storage_errors
from hes.db.models import Concentrator, EventRecord, IntervalValue, Meter, RegisterReading
from hes.devicetypes import DeviceTypeError, catalogue, default_type
from hes.errors import HesError
from scheduler.collection_models import CollectionWatermark, MeterCollection

__all__ = [
    "DEFAULT_THRESHOLD",
    "CompletenessReport",
    "MeterCompleteness",
    "ReportError",
    "SilentConcentrator",
    "SilentMeter",
    "SilentReport",
    "completeness",
    "silent",
]

#: Percent of a day's intervals a meter must have to count as collected (AMI specifications use 98 %).
DEFAULT_THRESHOLD = 98.0
_DEFAULT_PERIOD = 900


class ReportError(HesError):
    """A report asked for wrongly (threshold outside 0-100, a naive time): fix the request, a retry will not help."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _share(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else part / whole


# --- completeness --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterCompleteness:
    serial: str
    expected: int
    stored: int

    @property
    def share(self) -> float:
        return _share(self.stored, self.expected)

    def to_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "expected": self.expected, "stored": self.stored,
                "share": round(self.share, 6)}


@dataclass(frozen=True, slots=True)
class CompletenessReport:
    """One day's completeness; shares are between 0 and 1, ``threshold`` in percent."""

    day: date
    threshold: float
    meters: tuple[MeterCompleteness, ...]
    #: (serial, why) for meters not judged on this day.
    excluded: tuple[tuple[str, str], ...]
    as_of: datetime

    @property
    def meters_complete(self) -> int:
        return sum(1 for m in self.meters if m.stored >= m.expected)

    @property
    def intervals_expected(self) -> int:
        return sum(m.expected for m in self.meters)

    @property
    def intervals_stored(self) -> int:
        return sum(m.stored for m in self.meters)

    @property
    def below(self) -> tuple[MeterCompleteness, ...]:
        return tuple(m for m in self.meters if m.share * 100 < self.threshold)

    def to_json(self) -> dict[str, Any]:
        count = len(self.meters)
        below = self.below
        return {
            "day": self.day.isoformat(),
            "as_of": _iso(self.as_of),
            "threshold_percent": self.threshold,
            "meters": count,
            "meters_complete": self.meters_complete,
            "meters_complete_share": round(_share(self.meters_complete, count), 6),
            "meters_at_or_above_threshold_share": round(_share(count - len(below), count), 6),
            "intervals_expected": self.intervals_expected,
            "intervals_stored": self.intervals_stored,
            "intervals_share": round(_share(self.intervals_stored, self.intervals_expected), 6),
            "below_threshold": [m.serial for m in below],
            "below_threshold_detail": [m.to_json() for m in below],
            "excluded": [{"serial": serial, "reason": why} for serial, why in self.excluded],
        }


def completeness(engine: Engine, day: date, *, threshold: float = DEFAULT_THRESHOLD,
                 as_of: datetime | None = None) -> CompletenessReport:
    """The completeness of ``day`` (UTC) as of ``as_of`` (default now); see the module docstring."""
    if not 0.0 <= threshold <= 100.0 or math.isnan(threshold):
        raise ReportError(f"threshold {threshold} % is not between 0 and 100")
    if as_of is not None and as_of.utcoffset() is None:
        raise ReportError("as_of needs a time zone")
    start = datetime.combine(day, time(0), UTC)
    end = start + timedelta(days=1)
    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    upper = min(end, moment)
    with storage_errors(engine), Session(engine) as session:
        meters = session.execute(select(
            Meter.id, Meter.serial, Meter.state, Meter.commissioning_date, Meter.decommissioning_date,
            Meter.device_type, Meter.make, Meter.model, Meter.firmware,
        ).where(Meter.state.in_(("commissioned", "decommissioned")), or_(
            Meter.commissioning_date.is_(None), Meter.commissioning_date <= day,
        ), or_(Meter.decommissioning_date.is_(None), Meter.decommissioning_date >= day)).order_by(Meter.serial)).all()
        # Each meter's load profile is where its device type says: its watermark there has the capture period.
        types = catalogue(session)
        profile_of: dict[int, str] = {}
        for row in meters:
            try:
                kind = types.for_meter(row.device_type, row.make, row.model, row.firmware)
            except DeviceTypeError:
                kind = default_type()
            profile_of[row.id] = str(kind.load_profile.obis)
        periods: dict[int, int | None] = {ident: period for ident, obis, period in session.execute(select(
            CollectionWatermark.meter_id, CollectionWatermark.profile_obis, CollectionWatermark.period_seconds,
        ).where(CollectionWatermark.profile_obis.in_(sorted(set(profile_of.values()) or {"-"}))))
            if profile_of.get(ident) == obis}
        stored: dict[int, int] = {ident: int(count) for ident, count in session.execute(select(
            IntervalValue.meter_id, func.count(func.distinct(IntervalValue.interval_end)),
        ).where(IntervalValue.interval_end > start, IntervalValue.interval_end <= upper)
            .group_by(IntervalValue.meter_id))}
    judged: list[MeterCompleteness] = []
    excluded: list[tuple[str, str]] = []
    for ident, serial, state, commissioned, decommissioned, *_type in meters:
        if commissioned == day:
            excluded.append((serial, "commissioned during the day"))
            continue
        if decommissioned is not None and decommissioned <= day:
            if decommissioned == day:
                excluded.append((serial, "decommissioned during the day"))
            continue
        if state != "commissioned" and decommissioned is None:
            continue
        period = periods.get(ident) or _DEFAULT_PERIOD
        expected = max(0, int((upper - start).total_seconds()) // period)
        judged.append(MeterCompleteness(serial, expected, min(expected, stored.get(ident, 0))))
    return CompletenessReport(day, threshold, tuple(judged), tuple(excluded), moment)


# --- silent devices ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SilentMeter:
    serial: str
    concentrator: str | None
    #: The last time any of its data was stored (None: never).
    last_data: datetime | None
    #: What N2PLoad last saw: since when the DC has not reached it, and why.
    unreachable_since: datetime | None
    reason: str | None
    #: Since when its concentrator's meter table no longer lists it (None: listed, or never checked).
    missing_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "concentrator": self.concentrator, "last_contact": _iso(self.last_data),
                "unreachable_since": _iso(self.unreachable_since), "reason": self.reason,
                "missing_from_table_since": _iso(self.missing_since)}


@dataclass(frozen=True, slots=True)
class SilentConcentrator:
    ident: str
    last_contact: datetime | None
    last_attempt: datetime | None
    reachable: bool | None
    meters: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.ident, "last_contact": _iso(self.last_contact), "last_attempt": _iso(self.last_attempt),
                "reachable": self.reachable, "meters": self.meters}


@dataclass(frozen=True, slots=True)
class SilentReport:
    since: datetime
    meters: tuple[SilentMeter, ...]
    concentrators: tuple[SilentConcentrator, ...]

    def to_json(self) -> dict[str, Any]:
        return {"since": _iso(self.since), "meters": [m.to_json() for m in self.meters],
                "concentrators": [c.to_json() for c in self.concentrators]}


def _aware(value: Any) -> datetime | None:
    """An aggregate's time: SQLite hands MAX() back as text, not through the column type."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def silent(engine: Engine, since: datetime) -> SilentReport:
    """Meters with no data stored and concentrators with no contact since ``since`` (aware)."""
    if since.utcoffset() is None:
        raise ReportError("since needs a time zone")
    with storage_errors(engine), Session(engine) as session:
        last: dict[int, datetime] = {}
        for model in (IntervalValue, RegisterReading, EventRecord):
            rows = session.execute(select(model.meter_id, func.max(model.collected_at)).group_by(model.meter_id))
            for ident, value in rows:
                moment = _aware(value)
                if moment is not None and (ident not in last or moment > last[ident]):
                    last[ident] = moment
        states = {row.meter_id: row for row in session.scalars(select(MeterCollection))}
        meters = []
        for ident, serial, dc, missing in session.execute(select(
                Meter.id, Meter.serial, Meter.concentrator_id, Meter.missing_since).where(
                Meter.state == "commissioned").order_by(Meter.serial)):
            latest = last.get(ident)
            if latest is not None and latest >= since and missing is None:
                continue
            state = states.get(ident)
            reason = None if state is None else state.reason
            if missing is not None:
                reason = f"no longer in the meter table of concentrator {dc} (since {_iso(missing)})"
            meters.append(SilentMeter(serial, dc, latest, None if state is None else state.unreachable_since,
                                      reason, missing))
        counts: dict[str | None, int] = {dc: int(count) for dc, count in session.execute(select(
            Meter.concentrator_id, func.count()).where(Meter.state == "commissioned").group_by(Meter.concentrator_id))}
        dcs = [
            SilentConcentrator(row.id, row.last_contact, row.last_attempt, row.reachable, int(counts.get(row.id, 0)))
            for row in session.scalars(select(Concentrator).where(or_(
                Concentrator.last_contact.is_(None), Concentrator.last_contact < since)).order_by(Concentrator.id))
        ]
    return SilentReport(since.astimezone(UTC), tuple(meters), tuple(dcs))
