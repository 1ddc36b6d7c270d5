"""CIM messages built with lxml: MeterReadings and EndDeviceEvents (IEC 61968-9) in IEC 61968-100 EventMessages.

Inputs are frozen dataclasses checked on construction (aware times, exact values, OBIS codes):
``IntervalReading`` (one channel of one load-profile interval, stamped with the interval's END),
``RegisterReading`` (a register or a daily closure) and ``DeviceEvent`` (an entry of a meter's
event log). Values are the head-end's: the DLMS unit with the scaler applied (Wh, V), as ``int``
or ``Decimal``; the ReadingType's multiplier (its 16th field, 3 for kWh) converts them exactly
(1234 Wh is written 1.234 for a kWh ReadingType).

Output is deterministic: the same inputs, tables, correlation id and timestamp give the same
bytes. The MessageID is a UUID5 of the noun, the correlation id and the identities of what the
message carries (meter, OBIS, time; not the values nor the timestamp; a known missing interval
marked as missing), so rebuilding a message gives it its id again and the legacy side can drop a
duplicate. ``split_meter_readings`` and ``split_end_device_events`` cut a large set into
messages of bounded size (one meter-day each by default, and at most ``max_values`` readings or
events), linked through Header properties ``part``, ``parts`` and ``setId`` (a UUID5 of the
parts' MessageIDs).

Speed matters: the outbox builds these inside the transaction that stores the readings. Times
and OBIS codes are formatted once per build (memoised), identities once per item, and elements
are made with fully qualified tag names (no namespace look-up per element). A MeterReadings
message whose free texts (serials, names, source, correlation) are plain is written as text
straight to bytes, byte for byte what lxml writes (pinned by ``tests/cim/test_golden.py``);
any other takes the lxml path, which also refuses what XML cannot carry.
"""

from __future__ import annotations

import hashlib
import operator
import re
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type hints

from cim.reading_types import (
    CimError,
    CimInputError,
    CimTables,
    EventTypeEntry,
    ReadingKind,
    ReadingTypeEntry,
    TableError,
    UnknownEventType,
    UnknownReadingType,
    default_tables,
    normalise_obis,
)

__all__ = [
    "END_DEVICE_EVENTS_NS",
    "METER_READINGS_NS",
    "MESSAGE_NS",
    "MISSING_QUALITY",
    "NOUNS",
    "CimError",
    "CimInputError",
    "CimMessage",
    "DeviceEvent",
    "IntervalReading",
    "RegisterReading",
    "SplitBy",
    "TableError",
    "UnknownEventType",
    "UnknownReadingType",
    "end_device_events_message",
    "meter_readings_message",
    "split_end_device_events",
    "split_meter_readings",
]

MESSAGE_NS = "http://iec.ch/TC57/2011/schema/message"
METER_READINGS_NS = "http://iec.ch/TC57/2011/MeterReadings#"
END_DEVICE_EVENTS_NS = "http://iec.ch/TC57/2011/EndDeviceEvents#"
#: The payloads this module builds, by Noun.
NOUNS = {"MeterReadings": METER_READINGS_NS, "EndDeviceEvents": END_DEVICE_EVENTS_NS}
#: ReadingQuality "known missing read", added to every interval given without a value.
MISSING_QUALITY = "2.5.259"

SplitBy = Literal["meter-day", "meter", "all"]
Number = int | Decimal

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hes:cim:message")
_QUALITY = re.compile(r"^[0-9x]+\.\d+\.\d+$")
# Which field of an 18-field ReadingType code each ReadingType element carries, in the XSD's order.
_READING_TYPE_FIELDS = (
    ("accumulation", 3), ("aggregate", 1), ("commodity", 5), ("consumptionTier", 13), ("cpp", 12),
    ("currency", 17), ("flowDirection", 4), ("macroPeriod", 0), ("measurementKind", 6), ("measuringPeriod", 2),
    ("multiplier", 15), ("phases", 14), ("tou", 11), ("unit", 16),
)
_JUST_BEFORE = timedelta(microseconds=1)


# --- inputs ---------------------------------------------------------------------------------------------------------


def _check_meter(meter: object) -> None:
    if not isinstance(meter, str) or not meter.strip():
        raise CimInputError(f"meter must be a non-empty string, not {meter!r}")


def _utc(moment: object, what: str, meter: str) -> datetime:
    if not isinstance(moment, datetime):
        raise CimInputError(f"{what} of meter {meter} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CimInputError(f"{what} of meter {meter} is a naive datetime ({moment.isoformat()}); give it in UTC")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _check_value(value: object, where: str, *, missing_ok: bool) -> None:
    if value is None and missing_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CimInputError(f"value of {where} must be int or Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise CimInputError(f"value of {where} is not finite ({value})")


def _check_qualities(qualities: object, where: str) -> tuple[str, ...]:
    if isinstance(qualities, str) or not isinstance(qualities, tuple | list):
        raise CimInputError(f"qualities of {where} must be a tuple of codes such as '2.5.259'")
    if not qualities:
        return ()
    for code in qualities:
        if not isinstance(code, str) or not _QUALITY.match(code):
            raise CimInputError(f"quality {code!r} of {where} is not a ReadingQuality code (a.b.c)")
    return tuple(dict.fromkeys(qualities))  # once each, in the order given


_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class IntervalReading:
    """One channel (OBIS) of one load-profile interval, stamped with the interval's end (UTC).

    ``value`` None is a known missing interval: it is sent without a value, with quality 2.5.259.
    ``qualities`` are ReadingQuality codes (e.g. from ``CimTables.status_qualities(status)``).
    """

    meter: str
    obis: str
    end: datetime
    value: Number | None
    qualities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_meter(self.meter)
        object.__setattr__(self, "obis", normalise_obis(self.obis))
        object.__setattr__(self, "end", _utc(self.end, f"interval end of {self.obis}", self.meter))
        where = f"meter {self.meter} {self.obis}"
        _check_value(self.value, where, missing_ok=True)
        qualities = _check_qualities(self.qualities, where)
        if self.value is None and MISSING_QUALITY not in qualities:
            qualities = (*qualities, MISSING_QUALITY)
        object.__setattr__(self, "qualities", qualities)

    @classmethod
    def unchecked(
        cls, meter: str, obis: str, end: datetime, value: Number | None, qualities: tuple[str, ...] = ()
    ) -> IntervalReading:
        """Without the checks, for values that come from storage (normalised OBIS, aware UTC time, int or
        Decimal, codes from the tables): four times cheaper, which counts inside the storing transaction."""
        if cls is not IntervalReading:  # a subclass may add fields: through the general path
            self = _new(cls)
            for name, item in (("meter", meter), ("obis", obis), ("end", end), ("value", value)):
                _set(self, name, item)
        else:
            self = _new(IntervalReading)
            _SET_METER(self, meter)
            _SET_OBIS(self, obis)
            _SET_END(self, end)
            _SET_VALUE(self, value)
        _set(self, "qualities", qualities if value is not None else (*qualities, MISSING_QUALITY))
        return self


def _slot_setter(cls: type, name: str) -> Callable[[object, object], None]:
    setter: Callable[[object, object], None] = cls.__dict__[name].__set__  # the slot's member descriptor
    return setter


# The slots' own setters: a third cheaper than ``object.__setattr__`` by name, for ~200 readings a meter-day.
_SET_METER = _slot_setter(IntervalReading, "meter")
_SET_OBIS = _slot_setter(IntervalReading, "obis")
_SET_END = _slot_setter(IntervalReading, "end")
_SET_VALUE = _slot_setter(IntervalReading, "value")
_SET_QUALITIES = _slot_setter(IntervalReading, "qualities")
#: What ``IntervalReading.unchecked`` does, for a caller that inlines it in its loop (``cim.outbox``: one
#: call frame less per reading): ``object.__new__(IntervalReading)``, then these setters in field order.
_INTERVAL_SETTERS = (_SET_METER, _SET_OBIS, _SET_END, _SET_VALUE, _SET_QUALITIES)


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """A register value at a time (UTC): ``kind`` "register" for a register read, "daily" for a daily closure."""

    meter: str
    obis: str
    time: datetime
    value: Number
    qualities: tuple[str, ...] = ()
    kind: Literal["register", "daily"] = "register"

    def __post_init__(self) -> None:
        _check_meter(self.meter)
        object.__setattr__(self, "obis", normalise_obis(self.obis))
        object.__setattr__(self, "time", _utc(self.time, f"time of {self.obis}", self.meter))
        where = f"meter {self.meter} {self.obis}"
        if self.kind not in ("register", "daily"):
            raise CimInputError(f"kind of {where} must be 'register' or 'daily', not {self.kind!r}")
        _check_value(self.value, where, missing_ok=False)
        object.__setattr__(self, "qualities", _check_qualities(self.qualities, where))

    @classmethod
    def unchecked(
        cls, meter: str, obis: str, time: datetime, value: Number, qualities: tuple[str, ...] = (),
        kind: Literal["register", "daily"] = "register",
    ) -> RegisterReading:
        """Without the checks, for values that come from storage (see ``IntervalReading.unchecked``)."""
        self = _new(cls)
        for name, item in (("meter", meter), ("obis", obis), ("time", time), ("value", value),
                           ("qualities", qualities), ("kind", kind)):
            _set(self, name, item)
        return self


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """An entry of a meter's event log: the log's OBIS, the event code, its time (UTC), an optional name."""

    meter: str
    log: str
    code: int
    time: datetime
    name: str | None = None

    def __post_init__(self) -> None:
        _check_meter(self.meter)
        object.__setattr__(self, "log", normalise_obis(self.log))
        object.__setattr__(self, "time", _utc(self.time, f"event time in log {self.log}", self.meter))
        if isinstance(self.code, bool) or not isinstance(self.code, int) or self.code < 0:
            raise CimInputError(f"event code of meter {self.meter} must be a non-negative int, not {self.code!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise CimInputError(f"event name of meter {self.meter} must be a string or None")


@dataclass(frozen=True, slots=True)
class CimMessage:
    """One built message: its XML (UTF-8) and what the outbox keys and reports it by."""

    message_id: str
    noun: str
    correlation_id: str | None
    part: int  # 1-based; 1 of 1 for an unsplit message
    parts: int
    set_id: str | None  # the parts' common id, None for a message built alone
    meters: tuple[str, ...]
    count: int  # interval readings + readings, or events, carried
    xml: bytes


# --- identities and ordering ----------------------------------------------------------------------------------------

_Reading = IntervalReading | RegisterReading
_Item = IntervalReading | RegisterReading | DeviceEvent


@lru_cache(maxsize=8192)
def _iso(moment: datetime) -> str:
    # Memoised: the channels of an interval, and the parts of a run, share their times.
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _identity(item: _Item) -> str:
    if isinstance(item, IntervalReading):
        return f"interval|{item.meter}|{item.obis}|{_iso(item.end)}"
    if isinstance(item, RegisterReading):
        return f"{item.kind}|{item.meter}|{item.obis}|{_iso(item.time)}"
    return f"event|{item.meter}|{item.log}|{item.code}|{_iso(item.time)}"


@lru_cache(maxsize=8192)
def _closing_day(moment: datetime) -> date:
    # The UTC day a value closes: an interval ending at 00:00 and a closure stamped 00:00 belong to the day before.
    return (moment - _JUST_BEFORE).date()


#: An item with its identity and time, computed once: (meter, time, identity, item). A plain tuple: the cheapest
#: thing to make (a named tuple costs five times as much, once per reading), and it sorts by meter, time, identity.
_Keyed = tuple[str, datetime, str, _Item]


def _unique(items: Iterable[_Item]) -> list[_Keyed]:
    seen: dict[str, _Keyed] = {}
    for item in items:
        if isinstance(item, IntervalReading):
            moment = item.end
        elif isinstance(item, RegisterReading | DeviceEvent):
            moment = item.time
        else:
            raise CimInputError(f"not a reading or an event: {type(item).__name__}")
        key = _identity(item)
        if key in seen:
            raise CimInputError(f"given twice: {key.replace('|', ' ')}")
        seen[key] = (item.meter, moment, key, item)
    # Identities are unique, so sorting the tuples themselves never compares the items: (meter, time, identity).
    return sorted(seen.values())


def _unique_readings(intervals: Sequence[object], registers: Sequence[object]) -> list[_Keyed]:
    """``_unique`` of the intervals then the registers, each checked to be of its kind (``_only``'s errors).

    One loop per kind with the identity written inline: the outbox calls this for every store, ~200
    readings a meter-day (and thousands for a batch of meters). Duplicates are looked for only when
    the identities are fewer than the readings (``_first_duplicate``, with the errors it always gave).
    """
    seen: dict[str, _Keyed] = {}
    iso = _iso
    for item in intervals:
        if type(item) is not IntervalReading and not isinstance(item, IntervalReading):  # the exact type first: cheaper
            _only(intervals, (IntervalReading,), "intervals")  # raises, with the message it always gave
            raise AssertionError("unreachable")  # pragma: no cover  # _only raised
        key = f"interval|{item.meter}|{item.obis}|{iso(item.end)}"
        seen[key] = (item.meter, item.end, key, item)
    for item in registers:
        if type(item) is not RegisterReading and not isinstance(item, RegisterReading):  # the exact type first: cheaper
            _only(registers, (RegisterReading,), "registers")
            raise AssertionError("unreachable")  # pragma: no cover  # _only raised
        key = f"{item.kind}|{item.meter}|{item.obis}|{iso(item.time)}"
        seen[key] = (item.meter, item.time, key, item)
    if len(seen) != len(intervals) + len(registers):
        _first_duplicate(intervals, registers)
    return sorted(seen.values())


def _first_duplicate(intervals: Sequence[object], registers: Sequence[object]) -> None:
    """Raise for the first reading given twice (every reading is known to be of its kind)."""
    _only(registers, (RegisterReading,), "registers")  # a wrong kind is reported before a duplicate
    seen: set[str] = set()
    for item in (*intervals, *registers):
        assert isinstance(item, IntervalReading | RegisterReading)  # checked by the caller
        key = _identity(item)
        if key in seen:
            raise CimInputError(f"given twice: {key.replace('|', ' ')}")
        seen.add(key)
    raise AssertionError("no duplicate")  # pragma: no cover  # the caller counted one


_ID_PREFIX = _ID_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_ID_NAMESPACE, name))`` without the ``UUID`` object (once per message and per set)."""
    digest = bytearray(hashlib.sha1(_ID_PREFIX + name.encode("utf-8"), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _message_id(noun: str, correlation_id: str | None, keys: Iterable[str]) -> str:
    ordered = sorted(keys)
    return _uuid5("\n".join((noun, correlation_id or "", *ordered)))


def _id_keys(items: Iterable[_Keyed]) -> list[str]:
    """What a MessageID is made of: the identities, a known missing interval marked as such.

    An interval said to be missing and the same interval with the value read later are different
    news: the later message must not get the id of the first (the outbox would drop it as a duplicate).
    """
    return [
        f"{key}|missing" if isinstance(item, IntervalReading) and item.value is None else key
        for _, _, key, item in items
    ]


def _check_header(correlation_id: str | None, timestamp: datetime, source: str) -> datetime:
    if correlation_id is not None and (not isinstance(correlation_id, str) or not correlation_id.strip()):
        raise CimInputError("the correlation id (the order or plan run) must be a non-empty string or None")
    if not isinstance(source, str) or not source.strip():
        raise CimInputError("the message source must be a non-empty string")
    return _utc(timestamp, "message timestamp", source)


# --- XML ------------------------------------------------------------------------------------------------------------

_SubElement = etree.SubElement


class _Tags:
    """Fully qualified tag names of one namespace, made once (``_Tags(ns).Header`` is ``{ns}Header``)."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> str:
        tag = f"{{{self._namespace}}}{name}"
        setattr(self, name, tag)
        return tag


_M = _Tags(MESSAGE_NS)
_E = _Tags(END_DEVICE_EVENTS_NS)


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _leaf(parent: etree._Element, tag: str, text: str) -> None:
    _SubElement(parent, tag).text = text


def _number(value: Number, multiplier: int = 0) -> str:
    """``value`` / 10**multiplier, exactly, in plain decimal notation (1234, 3 -> "1.234")."""
    if type(value) is int and multiplier >= 0:  # the common case (Wh into kWh), without Decimal
        if not multiplier:
            return str(value)
        whole, fraction = divmod(abs(value), 10**multiplier)
        return f"{'-' if value < 0 else ''}{whole}.{fraction:0{multiplier}d}"
    text = format(Decimal(value).scaleb(-multiplier), "f")  # exact: a power-of-ten shift of a Decimal
    return "0" if text in ("-0", "0") else text


def _names(parent: etree._Element, tags: _Tags, name: str) -> None:
    _leaf(_SubElement(parent, tags.Names), tags.name, name)


def _reading_type_definition(out: list[str], entry: ReadingTypeEntry) -> None:
    fields = entry.code.split(".")
    out.append(f"<ReadingType><mRID>{entry.code}</mRID>")
    out.extend(f"<{tag}>{fields[index]}</{tag}>" for tag, index in _READING_TYPE_FIELDS)
    out.append(
        f"<argument><denominator>{fields[10]}</denominator><numerator>{fields[9]}</numerator></argument>"
        f"<interharmonic><denominator>{fields[8]}</denominator><numerator>{fields[7]}</numerator></interharmonic>"
        f"<Names><name>{_escape(entry.name)}</name></Names></ReadingType>"
    )


@lru_cache(maxsize=1024)
def _obis_order(obis: str) -> tuple[int, ...]:
    return tuple(int(g) for g in obis.split("."))


_NEVER = float("inf")  # no int is at least this: the inline case does not apply


@lru_cache(maxsize=8192)
def _interval_head(moment: datetime) -> str:
    # An IntervalReadings element up to its value, memoised: the meters of a batch share their interval ends.
    return f"<IntervalReadings><timeStamp>{_iso(moment)}</timeStamp>"


def _quality_refs(codes: tuple[str, ...]) -> str:
    # Codes are checked against a.b.c (digits, dots, 'x'): nothing to escape.
    return "".join(f'<ReadingQualities><ReadingQualityType ref="{code}"/></ReadingQualities>' for code in codes)


def _meter_readings_payload(readings: Sequence[_Reading], tables: CimTables) -> etree._Element:
    """The MeterReadings element.

    The text is assembled from escaped fragments and parsed once by lxml, which checks it is
    well-formed: a day of 96 x 2 intervals is some 600 elements, and making them one by one
    with ``SubElement`` costs three times as much as parsing their text (measured).
    """
    text, _ = _meter_readings_text(readings, tables)
    try:
        return etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:  # a character XML cannot carry, e.g. a control character in a serial
        raise CimInputError(f"cannot be put into XML: {exc}") from None


def _meter_readings_text(readings: Sequence[_Reading], tables: CimTables) -> tuple[str, list[str]]:
    """The MeterReadings element's text, and the free texts in it (serials, names) before escaping."""
    free: list[str] = []
    out: list[str] = [f'<MeterReadings xmlns="{METER_READINGS_NS}">']
    types: dict[str, ReadingTypeEntry] = {}
    qualities: set[str] = set()
    # One pass: per meter, its channels (each in the order given: time order) and its registers.
    by_meter: dict[str, tuple[dict[str, list[IntervalReading]], list[RegisterReading]]] = {}
    for reading in readings:
        groups = by_meter.get(reading.meter)
        if groups is None:
            groups = by_meter[reading.meter] = ({}, [])
        if type(reading) is IntervalReading or isinstance(reading, IntervalReading):
            channel = groups[0].get(reading.obis)
            if channel is None:
                channel = groups[0][reading.obis] = []
            channel.append(reading)
        else:
            groups[1].append(reading)  # a reading that is not an interval
    head = _interval_head
    for meter in sorted(by_meter):
        out.append("<MeterReading>")
        channels, registers = by_meter[meter]
        # One IntervalBlock per channel; its ReadingType reference comes after its IntervalReadings (XSD order).
        for obis in sorted(channels, key=_obis_order):
            entry = tables.reading_type(obis, "interval")
            types[entry.code] = entry
            multiplier = entry.multiplier
            out.append("<IntervalBlocks>")
            # _number's common case inline: a non-negative int with at least one digit before the point (Wh in
            # kWh) is its digits with the point put in; an int for a multiplier 0 is its digits.
            floor: float = 10**multiplier if multiplier > 0 else 0 if multiplier == 0 else _NEVER
            cut = -multiplier if multiplier > 0 else 0
            for interval in channels[obis]:  # in time order: the items come sorted by (meter,) time
                number = interval.value
                if type(number) is int and number >= floor:
                    if cut:
                        digits = str(number)
                        value = f"<value>{digits[:cut]}.{digits[cut:]}</value>"
                    else:
                        value = f"<value>{number}</value>"
                elif number is None:
                    value = ""
                else:
                    value = f"<value>{_number(number, multiplier)}</value>"
                if interval.qualities:
                    out.append(f"{head(interval.end)}{value}{_quality_refs(interval.qualities)}</IntervalReadings>")
                    qualities.update(interval.qualities)
                else:
                    out.append(f"{head(interval.end)}{value}</IntervalReadings>")
            out.append(f'<ReadingType ref="{entry.code}"/></IntervalBlocks>')
        free.append(meter)
        name = _escape(meter)
        out.append(f"<Meter><mRID>{name}</mRID><Names><name>{name}</name></Names></Meter>")
        for register in sorted(registers, key=lambda r: (r.time, r.kind, _obis_order(r.obis))):
            kind: ReadingKind = register.kind
            entry = tables.reading_type(register.obis, kind)
            types[entry.code] = entry
            out.append(f"<Readings><timeStamp>{_iso(register.time)}</timeStamp>"
                       f"<value>{_number(register.value, entry.multiplier)}</value>")
            if register.qualities:
                out.append(_quality_refs(register.qualities))
                qualities.update(register.qualities)
            out.append(f'<ReadingType ref="{entry.code}"/></Readings>')
        out.append("</MeterReading>")
    for code in sorted(qualities):
        system, category, sub_category = code.split(".")
        free.append(tables.quality_name(code))
        out.append(
            f"<ReadingQualityType><mRID>{code}</mRID><category>{category}</category>"
            f"<subCategory>{sub_category}</subCategory><systemId>{system}</systemId>"
            f"<Names><name>{_escape(tables.quality_name(code))}</name></Names></ReadingQualityType>"
        )
    for code in sorted(types):
        free.append(types[code].name)
        _reading_type_definition(out, types[code])
    out.append("</MeterReadings>")
    return "".join(out), free


# Free text lxml would write back exactly as ``_escape`` writes it: not empty (lxml writes ``<name/>``), no
# control character (refused, or a CR normalised), nothing XML cannot carry. Anything else takes the lxml path.
_PLAIN = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]+")


def _meter_readings_bytes(
    readings: Sequence[_Reading], tables: CimTables, *, message_id: str, correlation_id: str | None,
    timestamp: datetime, source: str, part: _Part | None,
) -> bytes | None:
    """The whole MeterReadings EventMessage written as text, byte for byte what ``_envelope`` makes of the
    parsed payload; None when a free text is not plain (the caller then takes the lxml path).

    The lxml round trip (parse the payload, serialise the envelope) was a fifth of a meter-day's build.
    """
    text, free = _meter_readings_text(readings, tables)
    plain = _PLAIN.fullmatch
    if not all(plain(item) for item in free) or not plain(source) or not plain(message_id):
        return None
    if correlation_id is not None and not plain(correlation_id):
        return None
    return _meter_readings_envelope(text, message_id=message_id, correlation_id=correlation_id, timestamp=timestamp,
                                    source=source, part=part)


def _meter_readings_envelope(
    text: str, *, message_id: str, correlation_id: str | None, timestamp: datetime, source: str, part: _Part | None,
) -> bytes:
    """The EventMessage around a MeterReadings payload written as text (free texts known to be plain);
    shared with ``cim.fast``, so both paths write the same header."""
    out = [
        f"<?xml version='1.0' encoding='UTF-8'?>\n<EventMessage xmlns=\"{MESSAGE_NS}\"><Header><Verb>created</Verb>"
        f"<Noun>MeterReadings</Noun><Timestamp>{_iso(timestamp)}</Timestamp><Source>{_escape(source)}</Source>"
        f"<MessageID>{_escape(message_id)}</MessageID>"
    ]
    if correlation_id is not None:
        out.append(f"<CorrelationID>{_escape(correlation_id)}</CorrelationID>")
    if part is not None:
        out.append(
            f"<Property><Name>part</Name><Value>{part.number}</Value></Property>"
            f"<Property><Name>parts</Name><Value>{part.count}</Value></Property>"
            f"<Property><Name>setId</Name><Value>{_escape(part.set_id)}</Value></Property>"
        )
    out.append(f"</Header><Payload>{text}</Payload></EventMessage>")
    return "".join(out).encode("utf-8")


def _event_mrid(key: str) -> str:
    return _uuid5(key)


def _end_device_events_payload(events: Sequence[_Keyed], tables: CimTables) -> etree._Element:
    root = etree.Element(_E.EndDeviceEvents, nsmap={None: END_DEVICE_EVENTS_NS})
    types: dict[str, EventTypeEntry] = {}
    for keyed in events:
        event = keyed[3]
        assert isinstance(event, DeviceEvent)  # the caller passes events only
        entry = tables.event_type(event.log, event.code)
        types[entry.code] = entry
        element = _SubElement(root, _E.EndDeviceEvent)
        _leaf(element, _E.mRID, _event_mrid(keyed[2]))
        _leaf(element, _E.createdDateTime, _iso(event.time))
        if event.name:
            _leaf(element, _E.reason, event.name)
        asset = _SubElement(element, _E.Assets)
        _leaf(asset, _E.mRID, event.meter)
        _names(asset, _E, event.meter)
        for name, value in (("eventLog", event.log), ("eventCode", str(event.code))):
            detail = _SubElement(element, _E.EndDeviceEventDetails)
            _leaf(detail, _E.name, name)
            _leaf(detail, _E.value, value)
        _SubElement(element, _E.EndDeviceEventType, ref=entry.code)
    for code in sorted(types):
        definition = _SubElement(root, _E.EndDeviceEventType)
        kind, domain, sub_domain, event_or_action = types[code].fields
        _leaf(definition, _E.mRID, code)
        _leaf(definition, _E.domain, domain)
        _leaf(definition, _E.eventOrAction, event_or_action)
        _leaf(definition, _E.subDomain, sub_domain)
        _leaf(definition, _E.type, kind)
        _names(definition, _E, types[code].name)
    return root


@dataclass(frozen=True, slots=True)
class _Part:
    number: int
    count: int
    set_id: str


def _envelope(
    noun: str, payload: etree._Element, *, message_id: str, correlation_id: str | None, timestamp: datetime,
    source: str, part: _Part | None,
) -> bytes:
    root = etree.Element(_M.EventMessage, nsmap={None: MESSAGE_NS})
    header = _SubElement(root, _M.Header)
    _leaf(header, _M.Verb, "created")
    _leaf(header, _M.Noun, noun)
    _leaf(header, _M.Timestamp, _iso(timestamp))
    _leaf(header, _M.Source, source)
    _leaf(header, _M.MessageID, message_id)
    if correlation_id is not None:
        _leaf(header, _M.CorrelationID, correlation_id)
    if part is not None:
        for name, value in (("part", str(part.number)), ("parts", str(part.count)), ("setId", part.set_id)):
            prop = _SubElement(header, _M.Property)
            _leaf(prop, _M.Name, name)
            _leaf(prop, _M.Value, value)
    _SubElement(root, _M.Payload).append(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- builders -------------------------------------------------------------------------------------------------------


_ITEM = operator.itemgetter(3)  # a _Keyed's item, as a C function for map
_METER = operator.itemgetter(0)  # a _Keyed's meter


def _build(
    noun: str, items: Sequence[_Keyed], tables: CimTables, *, message_id: str, correlation_id: str | None,
    timestamp: datetime, source: str, part: _Part | None,
) -> CimMessage:
    xml: bytes | None = None
    if noun == "MeterReadings":
        readings: list[_Reading] = list(map(_ITEM, items))  # the callers give readings only
        xml = _meter_readings_bytes(readings, tables, message_id=message_id, correlation_id=correlation_id,
                                    timestamp=timestamp, source=source, part=part)
        if xml is None:
            payload = _meter_readings_payload(readings, tables)
    else:
        payload = _end_device_events_payload([k for k in items if isinstance(k[3], DeviceEvent)], tables)
    if xml is None:
        xml = _envelope(
            noun, payload, message_id=message_id, correlation_id=correlation_id, timestamp=timestamp, source=source,
            part=part,
        )
    return CimMessage(
        message_id=message_id, noun=noun, correlation_id=correlation_id, part=part.number if part else 1,
        parts=part.count if part else 1, set_id=part.set_id if part else None,
        meters=tuple(sorted(set(map(_METER, items)))), count=len(items), xml=xml,
    )


def _only(items: Iterable[object], kinds: tuple[type, ...], what: str) -> list[_Item]:
    out: list[_Item] = []
    for item in items:
        if not isinstance(item, kinds):
            raise CimInputError(f"{what} must be given as {' or '.join(k.__name__ for k in kinds)}, "
                                f"not {type(item).__name__}")
        out.append(item)  # type: ignore[arg-type]  # checked just above
    return out


def _readings(intervals: Iterable[IntervalReading], registers: Iterable[RegisterReading]) -> list[_Keyed]:
    return _unique_readings(
        intervals if isinstance(intervals, list | tuple) else list(intervals),
        registers if isinstance(registers, list | tuple) else list(registers),
    )


def meter_readings_message(
    intervals: Iterable[IntervalReading] = (),
    registers: Iterable[RegisterReading] = (),
    *,
    correlation_id: str | None,
    timestamp: datetime,
    source: str = "hes",
    tables: CimTables | None = None,
) -> CimMessage:
    """One MeterReadings EventMessage carrying every interval and register reading given.

    ``CimInputError`` (one line) for an input that cannot be sent: a duplicate, an OBIS without a
    ReadingType in ``tables`` (``UnknownReadingType``), a naive timestamp, nothing at all.
    """
    stamp = _check_header(correlation_id, timestamp, source)
    items = _readings(intervals, registers)
    if not items:
        raise CimInputError("a MeterReadings message needs at least one reading")
    return _build(
        "MeterReadings", items, tables or default_tables(),
        message_id=_message_id("MeterReadings", correlation_id, _id_keys(items)),
        correlation_id=correlation_id, timestamp=stamp, source=source, part=None,
    )


def end_device_events_message(
    events: Iterable[DeviceEvent],
    *,
    correlation_id: str | None,
    timestamp: datetime,
    source: str = "hes",
    tables: CimTables | None = None,
) -> CimMessage:
    """One EndDeviceEvents EventMessage carrying every event given (``UnknownEventType`` for an unknown code)."""
    stamp = _check_header(correlation_id, timestamp, source)
    items = _unique(_only(events, (DeviceEvent,), "events"))
    if not items:
        raise CimInputError("an EndDeviceEvents message needs at least one event")
    return _build(
        "EndDeviceEvents", items, tables or default_tables(),
        message_id=_message_id("EndDeviceEvents", correlation_id, _id_keys(items)),
        correlation_id=correlation_id, timestamp=stamp, source=source, part=None,
    )


def _group_key(per: SplitBy) -> Callable[[_Keyed], Hashable]:
    if per == "meter-day":
        return lambda k: (k[0], _closing_day(k[1]))
    if per == "meter":
        return lambda k: k[0]
    if per == "all":
        return lambda k: ()
    raise CimInputError(f"split by must be 'meter-day', 'meter' or 'all', not {per!r}")


def _chunks(items: Sequence[_Keyed], per: SplitBy, max_values: int) -> list[list[_Keyed]]:
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
        raise CimInputError(f"max_values must be a positive integer, not {max_values!r}")
    key = _group_key(per)
    groups: dict[Hashable, list[_Keyed]] = {}
    if per == "meter-day":  # the default, for every store: _group_key's key inline
        closing = _closing_day
        meter: str | None = None
        day: date | None = None
        group: list[_Keyed] = []
        for item in items:  # items are sorted (meter, time, identity): groups come out in that order
            item_day = closing(item[1])
            if item_day != day or item[0] != meter:  # a look-up only where the group may change
                meter, day = item[0], item_day
                group = groups.setdefault((meter, day), [])
            group.append(item)
    else:
        for item in items:
            groups.setdefault(key(item), []).append(item)
    chunks: list[list[_Keyed]] = []
    for group in groups.values():
        if len(group) <= max_values:
            chunks.append(group)
            continue
        # Cut by time first, so a part covers a contiguous stretch of the group.
        ordered = sorted(group, key=lambda k: (k[1], k[2]))
        chunks.extend(ordered[start : start + max_values] for start in range(0, len(ordered), max_values))
    return chunks


def _split(
    noun: str, items: Sequence[_Keyed], *, correlation_id: str | None, timestamp: datetime, source: str,
    tables: CimTables | None, per: SplitBy, max_values: int,
) -> list[CimMessage]:
    stamp = _check_header(correlation_id, timestamp, source)
    chunks = _chunks(items, per, max_values)
    if not chunks:
        return []
    ids = [_message_id(noun, correlation_id, _id_keys(chunk)) for chunk in chunks]
    set_id = _uuid5("\n".join(("set", noun, correlation_id or "", *ids)))
    table = tables or default_tables()
    return [
        _build(
            noun, chunk, table, message_id=message_id, correlation_id=correlation_id, timestamp=stamp,
            source=source, part=_Part(number, len(chunks), set_id),
        )
        for number, (chunk, message_id) in enumerate(zip(chunks, ids, strict=True), start=1)
    ]


def split_meter_readings(
    intervals: Iterable[IntervalReading] = (),
    registers: Iterable[RegisterReading] = (),
    *,
    correlation_id: str | None,
    timestamp: datetime,
    source: str = "hes",
    tables: CimTables | None = None,
    per: SplitBy = "meter-day",
    max_values: int = 10_000,
) -> list[CimMessage]:
    """MeterReadings messages of bounded size: one per ``per`` group (a meter-day: the UTC day a value closes),
    a group larger than ``max_values`` readings cut into several; parts numbered 1..N in a stable order.

    Nothing given gives no message.
    """
    return _split(
        "MeterReadings", _readings(intervals, registers), correlation_id=correlation_id, timestamp=timestamp,
        source=source, tables=tables, per=per, max_values=max_values,
    )


def split_end_device_events(
    events: Iterable[DeviceEvent],
    *,
    correlation_id: str | None,
    timestamp: datetime,
    source: str = "hes",
    tables: CimTables | None = None,
    per: SplitBy = "meter-day",
    max_values: int = 10_000,
) -> list[CimMessage]:
    """EndDeviceEvents messages of bounded size, split as ``split_meter_readings`` does."""
    return _split(
        "EndDeviceEvents", _unique(_only(events, (DeviceEvent,), "events")), correlation_id=correlation_id,
        timestamp=timestamp, source=source, tables=tables, per=per, max_values=max_values,
    )
