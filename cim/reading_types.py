"""The CIM code tables: OBIS -> ReadingType, meter event -> EndDeviceEventType, quality codes, from a JSON file.

The defaults ship as ``cim/defaults.json`` (the codes of ../shared/cim-xsd/README.md); another
file with the same layout replaces them (``load_tables(path)``), since the codes are to be
confirmed with the receiving system. Layout::

    {"reading_types": [{"kind": "interval"|"daily"|"register", "obis": "1.0.1.8.0.255",
                        "code": "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "name": "..."}],
     "event_types": [{"log": "0.0.99.98.0.255" (optional: any log), "code": 1, "type": "3.26.0.85",
                      "name": "..."}],
     "reading_qualities": {"2.5.259": "Known missing read", ...},
     "status_bits": {"7": "1.2.32", ...},
     "quality_bits": {"0": null, "1": "...", ...}}

``status_bits`` map bits of the meter's profile status word (``IntervalValue.status``) to
ReadingQuality codes; ``quality_bits`` map the head-end's own quality flags
(``IntervalValue.quality``, ``hes.reads.QUALITY_*``) the same way, ``null`` for a flag that
carries no quality of its own (e.g. "status not zero", whose meaning the status bits give).

Keys starting with ``_`` and entries' ``note`` are comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from hes.errors import HesError
from protocols.obis import ObisCode

__all__ = [
    "KINDS",
    "CimError",
    "CimInputError",
    "CimTables",
    "EventTypeEntry",
    "ReadingKind",
    "ReadingTypeEntry",
    "TableError",
    "UnknownEventType",
    "UnknownReadingType",
    "default_tables",
    "load_tables",
    "normalise_obis",
]

ReadingKind = Literal["interval", "daily", "register"]
KINDS: tuple[ReadingKind, ...] = ("interval", "daily", "register")

_READING_TYPE = re.compile(r"^-?\d+(\.-?\d+){17}$")  # 18 fields; multiplier may be negative (milli)
_EVENT_TYPE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")  # type.domain.subDomain.eventOrAction
_QUALITY = re.compile(r"^[0-9x]+\.\d+\.\d+$")  # systemId.category.index; README writes "x" for any system


class CimError(HesError):
    """Root of the CIM errors: fixing the data or the tables is needed, a retry cannot help."""


class TableError(CimError):
    """A code table file that cannot be used (unreadable, not JSON, a malformed entry)."""


class CimInputError(CimError):
    """An input to a message builder that cannot be put into a CIM message (naive time, bad value, duplicate)."""


class UnknownReadingType(CimInputError):
    """An OBIS code (of a kind) that has no ReadingType in the table."""


class UnknownEventType(CimInputError):
    """A meter event code that has no EndDeviceEventType in the table."""


def normalise_obis(text: str) -> str:
    """The dotted form ``1.0.1.8.0.255`` of an OBIS code in either notation; ``CimInputError`` otherwise."""
    if not isinstance(text, str):
        raise CimInputError(f"not an OBIS code: {text!r}")
    return _normalise_obis(text)


@lru_cache(maxsize=4096)
def _normalise_obis(text: str) -> str:
    # Cached: a message build sees the same few codes hundreds of times.
    try:
        return str(ObisCode.parse(text))
    except (ValueError, TypeError) as exc:
        raise CimInputError(f"not an OBIS code: {text!r}") from exc


@dataclass(frozen=True, slots=True)
class ReadingTypeEntry:
    """A ReadingType: its 18-field code (used as mRID) and a human name."""

    code: str
    name: str

    @property
    def multiplier(self) -> int:
        """The power of ten of the ReadingType's unit (field 16: 3 for kWh); values are divided by 10**multiplier."""
        return int(self.code.split(".")[15])


@dataclass(frozen=True, slots=True)
class EventTypeEntry:
    """An EndDeviceEventType: its code type.domain.subDomain.eventOrAction and a human name."""

    code: str
    name: str

    @property
    def fields(self) -> tuple[str, str, str, str]:
        """(type, domain, subDomain, eventOrAction)."""
        t, d, s, e = self.code.split(".")
        return t, d, s, e


@dataclass(frozen=True, slots=True)
class CimTables:
    """The code tables one message build uses."""

    reading_types: Mapping[tuple[ReadingKind, str], ReadingTypeEntry]
    event_types: Mapping[tuple[str | None, int], EventTypeEntry]  # log None: any log
    reading_qualities: Mapping[str, str]
    status_bits: Mapping[int, str]
    quality_bits: Mapping[int, str | None] = field(default_factory=lambda: MappingProxyType({}))

    def reading_type(self, obis: str, kind: ReadingKind) -> ReadingTypeEntry:
        """The ReadingType of ``obis`` read as ``kind``; ``UnknownReadingType`` when the table has none."""
        key = (kind, normalise_obis(obis))
        entry = self.reading_types.get(key)
        if entry is None:
            raise UnknownReadingType(f"no ReadingType for OBIS {key[1]} ({kind}) in the CIM table")
        return entry

    def event_type(self, log: str, code: int) -> EventTypeEntry:
        """The EndDeviceEventType of event ``code`` in ``log``; ``UnknownEventType`` when the table has none."""
        log = normalise_obis(log)
        entry = self.event_types.get((log, code)) or self.event_types.get((None, code))
        if entry is None:
            raise UnknownEventType(f"no EndDeviceEventType for event code {code} of log {log} in the CIM table")
        return entry

    def status_qualities(self, status: int | None) -> tuple[str, ...]:
        """The ReadingQuality codes a profile status word carries (bits the table maps), in bit order."""
        if not status:
            return ()
        return tuple(dict.fromkeys(code for bit, code in sorted(self.status_bits.items()) if status >> bit & 1))

    def quality_qualities(self, quality: int | None) -> tuple[str, ...]:
        """The ReadingQuality codes of the head-end's quality flags (bits the table maps to a code), in bit order."""
        if not quality:
            return ()
        return tuple(dict.fromkeys(
            code for bit, code in sorted(self.quality_bits.items()) if code is not None and quality >> bit & 1
        ))

    def unmapped_quality_bits(self, quality: int | None) -> int:
        """The head-end quality flags set in ``quality`` that the table does not know (neither code nor null)."""
        known = 0
        for bit in self.quality_bits:
            known |= 1 << bit
        return (quality or 0) & ~known

    def quality_name(self, code: str) -> str:
        """The table's name of a ReadingQuality code, else the code itself."""
        return self.reading_qualities.get(code, code)


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TableError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _obis(text: str, where: str) -> str:
    try:
        return normalise_obis(text)
    except CimInputError as exc:
        raise TableError(f"{where}: {exc}") from None


def _parse(data: Any, origin: str) -> CimTables:
    if not isinstance(data, dict):
        raise TableError(f"{origin}: the top level must be a JSON object")
    reading_types: dict[tuple[ReadingKind, str], ReadingTypeEntry] = {}
    for i, item in enumerate(data.get("reading_types", [])):
        where = f"{origin}: reading_types[{i}]"
        if not isinstance(item, dict):
            raise TableError(f"{where}: must be an object")
        kind = _text(item, "kind", where)
        if kind not in KINDS:
            raise TableError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        code = _text(item, "code", where)
        if not _READING_TYPE.match(code):
            raise TableError(f"{where}: {code!r} is not an 18-field ReadingType code")
        key = (kind, _obis(_text(item, "obis", where), where))
        if key in reading_types:
            raise TableError(f"{where}: a second ReadingType for {key[1]} ({kind})")
        reading_types[key] = ReadingTypeEntry(code, _text(item, "name", where))
    event_types: dict[tuple[str | None, int], EventTypeEntry] = {}
    for i, item in enumerate(data.get("event_types", [])):
        where = f"{origin}: event_types[{i}]"
        if not isinstance(item, dict):
            raise TableError(f"{where}: must be an object")
        number = item.get("code")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise TableError(f"{where}: 'code' must be a non-negative integer")
        log = _obis(_text(item, "log", where), where) if item.get("log") is not None else None
        code = _text(item, "type", where)
        if not _EVENT_TYPE.match(code):
            raise TableError(f"{where}: {code!r} is not an EndDeviceEventType code (type.domain.subDomain.event)")
        if (log, number) in event_types:
            raise TableError(f"{where}: a second EndDeviceEventType for code {number} of log {log or 'any'}")
        event_types[(log, number)] = EventTypeEntry(code, _text(item, "name", where))
    qualities = data.get("reading_qualities", {})
    if not isinstance(qualities, dict) or not all(
        isinstance(k, str) and _QUALITY.match(k) and isinstance(v, str) for k, v in qualities.items()
    ):
        raise TableError(f"{origin}: reading_qualities must map quality codes (a.b.c) to names")
    bits = data.get("status_bits", {})
    status_bits: dict[int, str] = {}
    if not isinstance(bits, dict):
        raise TableError(f"{origin}: status_bits must map bit numbers to quality codes")
    for bit, quality in bits.items():
        if not (isinstance(bit, str) and bit.isdigit() and int(bit) < 32 and isinstance(quality, str)):
            raise TableError(f"{origin}: status_bits entry {bit!r} must map a bit number 0-31 to a quality code")
        if not _QUALITY.match(quality):
            raise TableError(f"{origin}: status_bits[{bit}]: {quality!r} is not a quality code (a.b.c)")
        status_bits[int(bit)] = quality
    raw_quality_bits = data.get("quality_bits", {})
    quality_bits: dict[int, str | None] = {}
    if not isinstance(raw_quality_bits, dict):
        raise TableError(f"{origin}: quality_bits must map bit numbers to quality codes or null")
    for bit, quality in raw_quality_bits.items():
        if not (isinstance(bit, str) and bit.isdigit() and int(bit) < 32):
            raise TableError(f"{origin}: quality_bits entry {bit!r} must be a bit number 0-31")
        if quality is not None and not (isinstance(quality, str) and _QUALITY.match(quality)):
            raise TableError(f"{origin}: quality_bits[{bit}]: {quality!r} is not a quality code (a.b.c) or null")
        quality_bits[int(bit)] = quality
    # read-only views: the default tables are shared by every build (cached)
    return CimTables(
        MappingProxyType(reading_types),
        MappingProxyType(event_types),
        MappingProxyType(dict(qualities)),
        MappingProxyType(status_bits),
        MappingProxyType(quality_bits),
    )


def load_tables(path: Path | str) -> CimTables:
    """The tables of a JSON file (the layout of ``cim/defaults.json``); ``TableError`` with one line otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read CIM table file {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"{path}: not JSON ({exc})") from exc
    return _parse(data, str(path))


@cache
def default_tables() -> CimTables:
    """The tables shipped in the package (``cim/defaults.json``)."""
    text = resources.files("cim").joinpath("defaults.json").read_text(encoding="utf-8")
    return _parse(json.loads(text), "cim/defaults.json")
