"""The outbox's fast path: stored interval rows straight to MeterReadings bytes, for the common case.

A collection pass stores many meter-days per transaction, and the outbox builds their messages
inside it (3 ms of CPU a meter-day is the whole budget). The general path makes a reading object
per value, an identity per reading, sorts them all and formats value by value; here the rows are
grouped once by (meter, UTC closing day, OBIS), each group is checked once for the common case,
and a channel's text is assembled with C-level maps (a memoised head per instant, the value's
digits split at the ReadingType's decimal point).

Everything else takes the general path (``cim.messages``), a whole meter-day message at a time,
never a mix inside a message: a row with status or quality bits, a value that is not an integer
or has a scaler, a free text that is not plain, a meter-day over ``max_values``. A time not in UTC,
a duplicate (the general path's error) or known missing intervals send the whole store there.
Bytes, MessageIDs, set ids, part numbers and message order are the general path's
(pinned by ``tests/cim/test_fast.py`` against it on random batches, and by the golden files).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from itertools import groupby, islice, repeat

from cim.messages import (
    _PLAIN,
    METER_READINGS_NS,
    CimError,
    CimMessage,
    IntervalReading,
    RegisterReading,
    _build,
    _check_header,
    _chunks,
    _closing_day,
    _escape,
    _id_keys,
    _iso,
    _Keyed,
    _message_id,
    _meter_readings_envelope,
    _number,
    _obis_order,
    _Part,
    _reading_type_definition,
    _unique_readings,
    _uuid5,
)
from cim.reading_types import CimTables, ReadingTypeEntry
from hes.db.readings import IntervalRow

__all__ = ["meter_readings"]

_NOUN = "MeterReadings"
_OPEN = f'<MeterReadings xmlns="{METER_READINGS_NS}"><MeterReading>'
_CLOSE_VALUE = "</value></IntervalReadings>"
# IntervalRow fields, as C functions for map.
_METER_ID = operator.itemgetter(0)
_OBIS = operator.itemgetter(1)
_END = operator.itemgetter(3)
_VALUE = operator.itemgetter(4)
_SCALER = operator.itemgetter(5)
_UNIT = operator.itemgetter(6)
_STATUS = operator.itemgetter(7)
_QUALITY = operator.itemgetter(8)
_TZ = operator.attrgetter("tzinfo")
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)

#: A meter-day's channels (rows by OBIS, as stored) and its register readings.
_Group = tuple[dict[str, list[IntervalRow]], list[RegisterReading]]
#: One message to make: its id, its payload text (fast) or its items (general), its meter, its reading count.
_Planned = tuple[str, str | list[_Keyed], str, int]


def meter_readings(
    intervals: Sequence[IntervalRow], registers: Sequence[RegisterReading], serials: Mapping[int, str],
    tables: CimTables, *, channel_ok: Callable[[str, int | None], bool],
    general: Callable[[Sequence[IntervalRow]], list[IntervalReading]],
    correlation_id: str | None, timestamp: datetime, source: str, max_values: int,
) -> list[CimMessage] | None:
    """The MeterReadings messages ``split_meter_readings`` makes per meter-day of these rows, or None.

    ``channel_ok`` says (and logs, once) whether an (OBIS, unit) channel can be sent; ``general``
    makes the general path's readings of a meter-day's rows. None: take the general path for the
    whole store (a header that cannot be written as text, a time not in UTC, a meter-day the
    general path refuses), so its errors stay exactly what they were.
    """
    try:
        stamp = _check_header(correlation_id, timestamp, source)
    except CimError:
        return None
    plain = _PLAIN.fullmatch
    if not plain(source) or (correlation_id is not None and not plain(correlation_id)):
        return None
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
        return None
    ends = list(map(_END, intervals))
    if any(tz is not UTC for tz in set(map(_TZ, ends))):  # closing days and order are then the general path's
        return None
    days = {end: _closing_day(end) for end in dict.fromkeys(ends)}
    groups: dict[tuple[str, date], _Group] = {}
    for (meter, day, obis), channel in _channels(intervals, serials, days).items():
        units = set(map(_UNIT, channel))
        if not all([channel_ok(obis, unit) for unit in units]):  # the general path leaves those rows out
            channel = [row for row in channel if channel_ok(obis, row[6])]
            if not channel:
                continue
        group = groups.get((meter, day))
        if group is None:
            group = groups[(meter, day)] = ({}, [])
        group[0][obis] = channel
    for register in registers:
        key = (register.meter, _closing_day(register.time))
        group = groups.get(key)
        if group is None:
            group = groups[key] = ({}, [])
        group[1].append(register)

    isos = {end: _iso(end) for end in days}
    heads = {end: f"<IntervalReadings><timeStamp>{iso}</timeStamp><value>" for end, iso in isos.items()}
    planned: list[_Planned] = []
    for meter, day in sorted(groups):  # the general path's order: meter, then day
        group = groups[(meter, day)]
        payload = _payload(meter, group, tables, max_values, isos, heads)
        if payload is not None:
            text, identities, size = payload
            planned.append((_uuid5(f"{_NOUN}\n{correlation_id or ''}\n{identities}"), text, meter, size))
            continue
        try:
            items = _unique_readings(general([r for channel in group[0].values() for r in channel]), group[1])
            cut = _chunks(items, "meter-day", max_values)
        except CimError:
            return None
        planned += [(_message_id(_NOUN, correlation_id, _id_keys(chunk)), chunk, meter, len(chunk)) for chunk in cut]
    if not planned:
        return []
    set_id = _uuid5("\n".join(("set", _NOUN, correlation_id or "", *(p[0] for p in planned))))
    count = len(planned)
    out: list[CimMessage] = []
    for number, (message_id, body, meter, size) in enumerate(planned, start=1):
        part = _Part(number, count, set_id)
        if isinstance(body, str):
            xml = _meter_readings_envelope(body, message_id=message_id, correlation_id=correlation_id,
                                           timestamp=stamp, source=source, part=part)
            out.append(CimMessage(message_id, _NOUN, correlation_id, number, count, set_id, (meter,), size, xml))
        else:
            out.append(_build(_NOUN, body, tables, message_id=message_id, correlation_id=correlation_id,
                              timestamp=stamp, source=source, part=part))
    return out


def _payload(
    meter: str, group: _Group, tables: CimTables, max_values: int, isos: Mapping[datetime, str],
    heads: Mapping[datetime, str],
) -> tuple[str, str, int] | None:
    """A meter-day's MeterReadings text, the identities its MessageID is made of (sorted, one a line) and how many
    readings it carries; None: not the common case.

    ``_message_id`` sorts the identities; here they are put in that order a channel at a time: a channel's
    identities share their prefix up to the time, and OBIS codes have no "|", so channels sort by OBIS + "|"
    (daily closures before them, registers after: "d" < "i" < "r").
    """
    channels, registers = group
    plain = _PLAIN.fullmatch
    if not plain(meter) or sum(map(len, channels.values())) + len(registers) > max_values:
        return None
    types = tables.reading_types
    used: dict[str, ReadingTypeEntry] = {}
    out = [_OPEN]
    blocks: list[tuple[str, str]] = []  # (OBIS + "|", the channel's identities)
    size = 0
    for obis in sorted(channels, key=_obis_order):
        rows = channels[obis]
        entry = types[("interval", obis)]  # channel_ok said it is there
        if any(map(_STATUS, rows)) or any(map(_QUALITY, rows)) or any(map(_SCALER, rows)) or not plain(entry.name):
            return None
        ends = list(map(_END, rows))
        if not all(map(operator.lt, ends, islice(ends, 1, None))):  # not strictly increasing: sort, then no twins
            rows.sort(key=_END)
            ends = list(map(_END, rows))
            if not all(map(operator.lt, ends, islice(ends, 1, None))):
                return None  # a duplicate: the general path's error
        values = _integers(list(map(_VALUE, rows)))
        if values is None:
            return None
        out += ("<IntervalBlocks>", _channel_text(ends, values, entry.multiplier, heads),
                f'<ReadingType ref="{entry.code}"/></IntervalBlocks>')
        used[entry.code] = entry
        prefix = f"interval|{meter}|{obis}|"
        blocks.append((f"{obis}|", prefix + f"\n{prefix}".join(sorted(map(isos.__getitem__, ends)))))
        size += len(ends)
    keys: list[str] = []
    name = _escape(meter)
    out.append(f"<Meter><mRID>{name}</mRID><Names><name>{name}</name></Names></Meter>")
    for register in sorted(registers, key=lambda r: (r.time, r.kind, _obis_order(r.obis))):
        found = types.get((register.kind, register.obis))
        if found is None or register.qualities or not plain(found.name):
            return None
        stamp = _iso(register.time)
        keys.append(f"{register.kind}|{meter}|{register.obis}|{stamp}")
        out.append(f"<Readings><timeStamp>{stamp}</timeStamp><value>{_number(register.value, found.multiplier)}"
                   f'</value><ReadingType ref="{found.code}"/></Readings>')
        used[found.code] = found
    if len(set(keys)) != len(keys):
        return None  # a register given twice: the general path's error
    out.append("</MeterReading>")
    out += (_definition(used[code]) for code in sorted(used))
    out.append("</MeterReadings>")
    keys.sort()
    identities = "\n".join((*(k for k in keys if k < "interval|"), *(block for _, block in sorted(blocks)),
                            *(k for k in keys if k > "interval|")))
    return "".join(out), identities, size + len(keys)


def _channels(
    rows: Sequence[IntervalRow], serials: Mapping[int, str], days: Mapping[datetime, date],
) -> dict[tuple[str, date, str], list[IntervalRow]]:
    """The rows by (meter, closing day, OBIS), in the order given.

    A store gives a meter's rows together, its channels in a fixed cycle and its times in order:
    those runs are cut with C-level slicing and ``groupby`` (no Python step per row); other
    layouts are grouped row by row.
    """
    out: dict[tuple[str, date, str], list[IntervalRow]] = {}
    for meter_id, run in groupby(rows, _METER_ID):
        meter = serials[meter_id]
        for obis, channel in _cycle(list(run)):
            for day, pairs in groupby(zip(map(days.__getitem__, map(_END, channel)), channel, strict=True), _FIRST):
                part = list(map(_SECOND, pairs))
                found = out.get((meter, day, obis))
                if found is None:
                    out[(meter, day, obis)] = part
                else:
                    found += part
    return out


def _cycle(run: list[IntervalRow]) -> list[tuple[str, list[IntervalRow]]]:
    """A meter's rows by channel: slices when the channels repeat in a fixed cycle, else row by row."""
    column = list(map(_OBIS, run))
    names = list(dict.fromkeys(column))
    if len(names) == 1:
        return [(names[0], run)]
    period = len(names)
    if len(run) % period == 0 and column == names * (len(run) // period):
        return [(name, run[index::period]) for index, name in enumerate(names)]
    by_obis: dict[str, list[IntervalRow]] = {name: [] for name in names}
    for row in run:
        by_obis[row[1]].append(row)
    return list(by_obis.items())


def _integers(values: list[float]) -> list[int] | None:
    """The raw values as ints (what ``_exact`` makes of an integral value with scaler 0); None for any other."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return values  # type: ignore[return-value]  # all of them are ints
    if kinds <= {int, float} and all(type(v) is int or v.is_integer() for v in values):
        return list(map(int, values))
    return None


def _channel_text(ends: list[datetime], values: list[int], multiplier: int, heads: Mapping[datetime, str]) -> str:
    """A channel's IntervalReadings, each value as ``_number`` writes it (Wh in kWh: the digits, a point put in)."""
    if multiplier == 0:
        texts = list(map(_WHOLE.__mod__, values))
    elif 0 < multiplier <= 3 and values and min(values) >= 0:  # a table of 10**multiplier fractions
        scale = 10**multiplier
        fractions = _fractions(multiplier)
        parts: list[str] = [""] * (3 * len(values))
        parts[0::3] = map(heads.__getitem__, ends)
        parts[1::3] = map(str, map(operator.floordiv, values, repeat(scale)))
        parts[2::3] = map(fractions.__getitem__, map(operator.mod, values, repeat(scale)))
        return "".join(parts)
    elif multiplier > 0 and values and min(values) >= 0:
        texts = list(map(f"%d.%0{multiplier}d{_CLOSE_VALUE}".__mod__, map(divmod, values, repeat(10**multiplier))))
    else:
        texts = [f"{_number(v, multiplier)}{_CLOSE_VALUE}" for v in values]
    parts = [""] * (2 * len(values))
    parts[0::2] = map(heads.__getitem__, ends)
    parts[1::2] = texts
    return "".join(parts)


_WHOLE = f"%d{_CLOSE_VALUE}"


@lru_cache(maxsize=8)
def _fractions(multiplier: int) -> tuple[str, ...]:
    """Every fraction of a value written in a unit 10**multiplier larger, with the closing tags (".007</value>...")."""
    return tuple(f".{n:0{multiplier}d}{_CLOSE_VALUE}" for n in range(10**multiplier))


@lru_cache(maxsize=64)
def _definition(entry: ReadingTypeEntry) -> str:
    """A ReadingType element, as the general path writes it (the same few for every message)."""
    out: list[str] = []
    _reading_type_definition(out, entry)
    return "".join(out)
