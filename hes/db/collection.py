"""N2PLoad's storage: watermarks, gaps, a meter's reachability as collection sees it; each statement once, driver-level.

The tables are the scheduler's (``scheduler.collection_models``: ``collection_watermarks``,
``collection_gaps``, ``meter_collection``); the rules (what to ask, where the watermark goes, when
a gap is lost) are N2PLoad's (``scheduler.n2pload``). This module only reads and writes them, in
the caller's transaction, with plain statements (a pass runs them for every meter: see ``hes.db.sql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from hes.db.sql import from_db, run, run_many, to_db

__all__ = [
    "GapRow",
    "Watermark",
    "insert_gap",
    "load_gaps",
    "load_watermark",
    "load_watermarks",
    "record_attempts",
    "record_misses",
    "record_reached",
    "resolve_gap",
    "set_after_gap",
    "stored_ends",
    "update_gap",
    "upsert_watermarks",
]

_WATERMARK_SQL = (
    "SELECT w.collected_until, w.shape, w.period_seconds, (SELECT COUNT(*) FROM collection_gaps g "
    "WHERE g.meter_id = ? AND g.profile_obis = ? AND g.state IN ('open', 'lost')) "
    "FROM (SELECT 1 AS one) AS here LEFT JOIN collection_watermarks w ON w.meter_id = ? AND w.profile_obis = ?"
)
_WATERMARKS_SQL: dict[int, str] = {}  # by the number of profiles asked: one statement for all of a meter's marks
_GAPS_SQL = ("SELECT id, first_missing, last_missing, missing, attempts, state FROM collection_gaps "
             "WHERE meter_id = ? AND profile_obis = ? AND state IN ('open', 'lost')")
_WATERMARK_UPSERT_SQL = (
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
_GAP_UPDATE_SQL = ("UPDATE collection_gaps SET attempts = ?, last_missing = ?, missing = ?, state = ?, resolved_at = ? "
                   "WHERE id = ?")
_GAP_RESOLVE_SQL = "UPDATE collection_gaps SET state = ?, resolved_at = ? WHERE id = ?"
_GAP_INSERT_SQL = (
    "INSERT INTO collection_gaps (meter_id, profile_obis, first_missing, last_missing, missing, state, attempts, "
    "detected_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
)
# Our quality flag QUALITY_AFTER_GAP on the interval after a gap: set when the gap is found, cleared once it is filled.
_AFTER_GAP_SET_SQL = ("UPDATE interval_values SET quality = quality + ? WHERE meter_id = ? AND interval_end = ? "
                      "AND (quality & ?) = 0")
_AFTER_GAP_CLEAR_SQL = ("UPDATE interval_values SET quality = quality - ? WHERE meter_id = ? AND interval_end = ? "
                        "AND (quality & ?) != 0")
_STORED_ENDS_SQL = ("SELECT obis, attribute, interval_end FROM interval_values WHERE meter_id = ? "
                    "AND interval_end >= ? AND interval_end <= ?")


@dataclass(frozen=True, slots=True)
class Watermark:
    """A meter's watermark for one profile: up to when everything is stored (None: never collected)."""

    collected_until: datetime | None
    shape: str | None
    period: int | None
    #: Gaps still open or lost for this profile (0: ``load_gaps`` need not be asked).
    gaps: int


@dataclass(frozen=True, slots=True)
class GapRow:
    id: int
    first: datetime
    last: datetime
    missing: int
    attempts: int
    state: str


def load_watermark(connection: Connection, meter_id: int, obis: str) -> Watermark:
    until, shape, period, gaps = run(connection, _WATERMARK_SQL, (meter_id, obis, meter_id, obis)).fetchone()
    return Watermark(from_db(until), shape, None if period is None else int(period), int(gaps or 0))


def load_watermarks(connection: Connection, meter_id: int, obises: Sequence[str]) -> dict[str, Watermark]:
    """``load_watermark`` for each of a meter's profiles, in one statement (a pass asks it for every meter)."""
    if len(obises) == 1:
        return {obises[0]: load_watermark(connection, meter_id, obises[0])}
    sql = _WATERMARKS_SQL.get(len(obises))
    if sql is None:
        sql = _WATERMARKS_SQL[len(obises)] = " UNION ALL ".join(
            f"SELECT {i}, * FROM ({_WATERMARK_SQL}) AS m{i}" for i in range(len(obises)))
    params = [value for obis in obises for value in (meter_id, obis, meter_id, obis)]
    out: dict[str, Watermark] = {}
    for index, until, shape, period, gaps in run(connection, sql, params).fetchall():
        out[obises[int(index)]] = Watermark(from_db(until), shape, None if period is None else int(period),
                                            int(gaps or 0))
    return out


def load_gaps(connection: Connection, meter_id: int, obis: str) -> list[GapRow]:
    """The gaps still open or lost for (meter, profile)."""
    out = []
    for ident, first, last, missing, attempts, state in run(connection, _GAPS_SQL, (meter_id, obis)).fetchall():
        first_at, last_at = from_db(first), from_db(last)
        if first_at is None or last_at is None:  # NOT NULL columns
            continue
        out.append(GapRow(int(ident), first_at, last_at, int(missing), int(attempts), str(state)))
    return out


def upsert_watermarks(connection: Connection, rows: Sequence[tuple[int, str, datetime, int | None, str | None,
                                                                   datetime]]) -> None:
    """(meter, profile, collected until, period, shape or None to keep, now): the watermark only moves forward."""
    run_many(connection, _WATERMARK_UPSERT_SQL, [(meter, obis, to_db(connection, until), period, shape,
                                                  to_db(connection, now))
                                                 for meter, obis, until, period, shape, now in rows])


def record_reached(connection: Connection, rows: Sequence[tuple[int, datetime]]) -> None:
    """Meters that gave new data at these times: reachable, their misses reset."""
    stamped = [(meter, to_db(connection, at)) for meter, at in rows]
    run_many(connection, _REACHED_SQL, [(meter, True, at, at) for meter, at in stamped])


def record_misses(connection: Connection, rows: Sequence[tuple[int, datetime, str]]) -> None:
    """Meters whose DC returned nothing newer (at, why): unreachable since the first miss, misses counted."""
    run_many(connection, _MISSED_SQL, [(meter, False, to_db(connection, at), to_db(connection, at), reason)
                                       for meter, at, reason in rows])


def record_attempts(connection: Connection, rows: Sequence[tuple[int, datetime, str | None]]) -> None:
    """Meters tried at these times with no news of their reachability (a FAIL's reason, or None)."""
    run_many(connection, _ATTEMPT_SQL, [(meter, to_db(connection, at), reason) for meter, at, reason in rows])


def update_gap(connection: Connection, gap_id: int, attempts: int, last: datetime, missing: int, state: str,
               resolved_at: datetime | None) -> None:
    run(connection, _GAP_UPDATE_SQL, (attempts, to_db(connection, last), missing, state,
                                      to_db(connection, resolved_at), gap_id))


def resolve_gap(connection: Connection, gap_id: int, state: str, at: datetime) -> None:
    run(connection, _GAP_RESOLVE_SQL, (state, to_db(connection, at), gap_id))


def insert_gap(connection: Connection, meter_id: int, obis: str, first: datetime, last: datetime, missing: int,
               state: str, at: datetime, resolved_at: datetime | None) -> None:
    run(connection, _GAP_INSERT_SQL, (meter_id, obis, to_db(connection, first), to_db(connection, last), missing,
                                      state, to_db(connection, at), to_db(connection, resolved_at)))


def set_after_gap(connection: Connection, meter_id: int, interval_end: datetime, flag: int, on: bool) -> None:
    """Set (``on``) or clear the after-gap quality flag of the values stored for one interval end."""
    run(connection, _AFTER_GAP_SET_SQL if on else _AFTER_GAP_CLEAR_SQL,
        (flag, meter_id, to_db(connection, interval_end), flag))


def stored_ends(connection: Connection, meter_id: int, first: datetime, last: datetime) -> set[tuple[str, int,
                                                                                                   datetime]]:
    """(OBIS, attribute, interval end) of every value stored for the meter with an end in [first, last]."""
    rows = run(connection, _STORED_ENDS_SQL, (meter_id, to_db(connection, first), to_db(connection, last))).fetchall()
    out = set()
    for obis, attribute, end in rows:
        at = from_db(end)
        if at is not None:
            out.add((str(obis), int(attribute), at))
    return out
