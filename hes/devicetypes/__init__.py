"""Device types as data: what a make and model of meter has, where, and how to talk to it, without code.

A device type is a JSON file (``hes-devicetype/1``, ``docs/DEVICE_TYPES.md``): the make, model and
firmware range it describes; the OBIS codes (and interface classes) of its clock, serial number,
registers, load profile and daily values (with the capture objects expected), event logs with their
code tables, and disconnect control; its referencing, its security defaults, and limits such as
the largest GET-with-list and PDU it accepts. Reads, N2PLoad, plans' support check and the event
bus take every such detail from the meter's type, so a new make is added by adding its file
(``hes devicetype add FILE``), not by changing the head-end.

``parse_device_type`` checks a file and names the first bad field in one line
(``DeviceTypeError``); ``Catalogue`` holds the shipped types (the ``*.json`` beside this module)
and the added ones, and finds a meter's type by name or by make, model and firmware.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from hes.db.models import DeviceTypeRow
from hes.errors import HesError
from hes.events.catalog import Catalog, Criticality, EventDefinition, EventLogDefinition
from protocols.errors import DlmsError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition

__all__ = [
    "DEFAULT_TYPE",
    "FORMAT",
    "SHIPPED",
    "CATALOGUE_TTL",
    "Catalogue",
    "DeviceType",
    "cached_catalogue",
    "catalogue",
    "default_type",
    "forget_catalogue",
    "DeviceTypeError",
    "EventLogSpec",
    "PushPolicy",
    "Limits",
    "ProfileSpec",
    "RegisterSpec",
    "parse_device_type",
    "read_device_type",
    "shipped_types",
    "stored_device_types",
]

logger = logging.getLogger(__name__)

FORMAT = "hes-devicetype/1"
#: The type of a meter whose own type is not known: the IDIS companion specification's objects.
DEFAULT_TYPE = "idis-default"
SHIPPED = Path(__file__).resolve().parent
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_POLICIES = ("none", "lls", "hls-gmac")
_CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
_SERIAL = ObisCode(0, 0, 96, 1, 0, 255)


class DeviceTypeError(HesError):
    """A device type that cannot be used: one line names the file and the field."""


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    obis: ObisCode
    name: str
    class_id: int = 3


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """A profile generic: where it is, its capture period (None: as the meter says), the capture objects expected,
    and which of them is the profile's status word when it is not at 0.x.96.10.x.x (None: found by that rule)."""

    obis: ObisCode
    period: int | None = None
    capture: tuple[CaptureObjectDefinition, ...] = ()
    status: ObisCode | None = None


@dataclass(frozen=True, slots=True)
class EventLogSpec:
    """An event log: its name (standard, fraud, ...), where it is, and its own code table (empty: the
    head-end's event table for a log at that OBIS)."""

    name: str
    obis: ObisCode
    events: Mapping[int, EventDefinition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the device accepts: the most attributes in one GET-with-list, the largest APDU it receives."""

    max_get_with_list: int | None = None
    max_pdu: int | None = None


@dataclass(frozen=True, slots=True)
class PushPolicy:
    """What the push listener takes from the device: ``accept_encryption_only`` lets pushes ciphered without
    authentication (security control 0x20) in; by default they are refused, since anyone who can send to the
    listener can flip their bits unseen."""

    accept_encryption_only: bool = False


@dataclass(frozen=True, slots=True)
class DeviceType:
    """One make and model (and firmware range) of meter, as the head-end uses it."""

    name: str
    description: str
    make: str | None
    model: str | None
    firmware: str | None
    clock: ObisCode
    serial: ObisCode
    registers: tuple[RegisterSpec, ...]
    load_profile: ProfileSpec
    daily: ProfileSpec | None
    event_logs: tuple[EventLogSpec, ...]
    relay: ObisCode | None
    limits: Limits = Limits()
    referencing: str = "logical"
    security_policy: str | None = None
    client_sap: int | None = None
    push: PushPolicy = PushPolicy()
    #: How HLS-GMAC associations cipher their APDUs: ``service-specific`` (glo-get-request 0xC8 ...) or
    #: ``general-glo`` (general-glo-ciphering 0xDB), as the meter expects.
    ciphering: str = "service-specific"

    def matches(self, make: str | None, model: str | None, firmware: str | None) -> bool:
        """Whether a meter of this make, model and firmware is of this type (a field the type leaves open matches)."""
        if self.make is not None and (make or "").casefold() != self.make.casefold():
            return False
        if self.model is not None and (model or "").casefold() != self.model.casefold():
            return False
        return self.firmware is None or (firmware is not None and firmware_in(firmware, self.firmware))

    def objects(self) -> frozenset[str]:
        """``class_id/OBIS`` of every object the type says its meters have (the plans' support check)."""
        keys = {f"8/{self.clock}", f"1/{self.serial}", f"7/{self.load_profile.obis}"}
        keys |= {f"{r.class_id}/{r.obis}" for r in self.registers}
        keys |= {f"7/{log.obis}" for log in self.event_logs}
        if self.daily is not None:
            keys.add(f"7/{self.daily.obis}")
        if self.relay is not None:
            keys.add(f"70/{self.relay}")
        return frozenset(keys)

    def event_catalog(self, base: Catalog) -> Catalog:
        """The event table for this type's meters: its logs, each with its own code table or ``base``'s."""
        logs: dict[str, EventLogDefinition] = dict(base.logs)
        for log in self.event_logs:
            obis = str(log.obis)
            inherited = base.log_for_obis(obis)
            events = dict(log.events) if log.events else (dict(inherited.events) if inherited is not None else {})
            name = inherited.name if inherited is not None else log.name
            logs[name] = EventLogDefinition(name, "meter", obis, events)
        return Catalog(logs, base.unknown_criticality)


# --- firmware ranges ------------------------------------------------------------------------------------------------


def _version(text: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.\-_]", text.strip()))


def firmware_in(firmware: str, spec: str) -> bool:
    """``firmware`` against a range such as ``>=2.0,<3`` (clauses ``==``, ``>=``, ``>``, ``<=``, ``<``, or a bare
    version for equality), versions compared part by part, numbers as numbers."""
    have = _version(firmware)
    for clause in spec.split(","):
        clause = clause.strip()
        match = re.match(r"^(==|>=|<=|>|<)?\s*(\S+)$", clause)
        if match is None:
            return False
        op, want = match.group(1) or "==", _version(match.group(2))
        ok = {"==": have == want, ">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want}[op]
        if not ok:
            return False
    return True


def _range_ok(spec: str) -> bool:
    return all(re.match(r"^(==|>=|<=|>|<)?\s*[0-9A-Za-z][0-9A-Za-z.\-_]*$", c.strip()) for c in spec.split(","))


# --- parsing --------------------------------------------------------------------------------------------------------


class _At:
    """Typed getters over one object of the file; every error names the path of the field."""

    def __init__(self, raw: Mapping[str, Any], path: str, fail: Any) -> None:
        self.raw, self.path, self.fail = raw, path, fail

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        return self.raw.get(key)

    def text(self, key: str, *, required: bool = False, limit: int = 200) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.fail(f"{self.at(key)} is missing")
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise self.fail(f"{self.at(key)} must be text of 1 to {limit} characters")
        return value.strip()

    def obis(self, key: str) -> ObisCode:
        value = self.raw.get(key)
        try:
            if not isinstance(value, str):
                raise ValueError
            return ObisCode.parse(value)
        except (ValueError, DlmsError):
            raise self.fail(f"{self.at(key)}: {value!r} is not an OBIS code (e.g. 1.0.99.1.0.255)") from None

    def optional_obis(self, key: str, default: ObisCode | None = None) -> ObisCode | None:
        return default if self.raw.get(key) is None else self.obis(key)

    def boolean(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail(f"{self.at(key)} must be true or false")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"{self.at(key)} must be a whole number from {low} to {high}")
        return value

    def child(self, key: str) -> _At:
        """The object at ``key`` (required)."""
        value = self.raw.get(key)
        if value is None:
            raise self.fail(f"{self.at(key)} is missing")
        if not isinstance(value, dict):
            raise self.fail(f"{self.at(key)} must be an object")
        return _At(value, self.at(key), self.fail)

    def optional(self, key: str) -> _At | None:
        return None if self.raw.get(key) is None else self.child(key)

    def items(self, key: str) -> list[_At]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{self.at(key)} must be a list")
        out = []
        for n, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{self.at(key)}[{n}] must be an object")
            out.append(_At(item, f"{self.at(key)}[{n}]", self.fail))
        return out


def _capture(text: Any, where: str, fail: Any) -> CaptureObjectDefinition:
    """``class_id/OBIS/attribute`` (attribute 2 when left out), e.g. ``8/0.0.1.0.0.255/2``."""
    parts = text.split("/") if isinstance(text, str) else []
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return CaptureObjectDefinition(int(parts[0]), ObisCode.parse(parts[1]), int(parts[2]) if len(parts) == 3 else 2)
    except (ValueError, DlmsError):
        raise fail(f"{where}: {text!r} is not class_id/OBIS/attribute (e.g. 3/1.0.1.8.0.255/2)") from None


def _profile(at: _At, fail: Any) -> ProfileSpec:
    obis = at.obis("obis")
    captures = at.get("capture") or []
    if not isinstance(captures, list):
        raise fail(f"{at.at('capture')} must be a list of class_id/OBIS/attribute")
    capture = tuple(_capture(c, f"{at.at('capture')}[{n}]", fail) for n, c in enumerate(captures))
    if capture and not any(c.class_id == 8 and c.attribute_index == 2 for c in capture):
        raise fail(f"{at.at('capture')}: no clock (8/.../2): the profile could not be read by time range")
    status = at.optional_obis("status")
    if status is not None and capture and not any(c.logical_name == status for c in capture):
        raise fail(f"{at.at('status')}: {status} is not one of the capture objects")
    return ProfileSpec(obis, at.integer("period", 1, 31 * 86400), capture, status)


def _events(at: _At, name: str, fail: Any) -> dict[int, EventDefinition]:
    raw = at.get("events") or {}
    if not isinstance(raw, dict):
        raise fail(f"{at.at('events')} must be an object of code: {{name, criticality}}")
    out: dict[int, EventDefinition] = {}
    for code_text, entry in raw.items():
        where = f"{at.at('events')}.{code_text}"
        try:
            code = int(code_text)
        except ValueError:
            raise fail(f"{where}: the code is not a whole number") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise fail(f"{where}: expected {{\"name\": ..., \"criticality\": ...}}")
        try:
            level = Criticality.parse(str(entry.get("criticality", "info")), where)
        except HesError as exc:
            raise fail(str(exc)) from None
        out[code] = EventDefinition(name, code, entry["name"].strip()[:128], level, bool(entry.get("tamper", False)))
    return out


def parse_device_type(raw: Any, source: str = "device type") -> DeviceType:
    """A device type from its JSON document; ``DeviceTypeError`` names ``source`` and the first bad field."""

    def fail(message: str) -> DeviceTypeError:
        return DeviceTypeError(f"{source}: {message}")

    if not isinstance(raw, dict):
        raise fail("the top level must be a JSON object")
    if raw.get("format") != FORMAT:
        raise fail(f"format is {raw.get('format')!r}, expected {FORMAT!r}")
    top = _At(raw, "", fail)
    name = top.text("name", required=True)
    if name is None or not _NAME.match(name):
        raise fail(f"name {name!r}: 1 to 64 letters, digits, '_', '.', ':' or '-'")
    match = top.optional("match") or _At({}, "match", fail)
    firmware = match.text("firmware", limit=64)
    if firmware is not None and not _range_ok(firmware):
        raise fail(f"match.firmware {firmware!r} is not a range such as '>=2.0,<3'")
    referencing = top.text("referencing") or "logical"
    if referencing != "logical":
        raise fail(f"referencing {referencing!r}: only logical-name referencing is supported")
    objects = top.child("objects")
    registers = tuple(RegisterSpec(r.obis("obis"), r.text("name", required=True) or "",
                                   r.integer("class", 1, 0xFFFF) or 3) for r in objects.items("registers"))
    if not registers:
        raise fail("objects.registers: at least one register")
    load = _profile(objects.child("load_profile"), fail)
    daily_at = objects.optional("daily_values")
    logs = []
    for log in objects.items("event_logs"):
        log_name = log.text("name", required=True, limit=32) or ""
        logs.append(EventLogSpec(log_name, log.obis("obis"), _events(log, log_name, fail)))
    security = top.optional("security") or _At({}, "security", fail)
    policy = security.text("policy")
    if policy is not None and policy not in _POLICIES:
        raise fail(f"security.policy must be one of {', '.join(_POLICIES)}, not {policy!r}")
    limits = top.optional("limits") or _At({}, "limits", fail)
    push = top.optional("push") or _At({}, "push", fail)
    ciphering = security.text("ciphering") or "service-specific"
    if ciphering not in ("service-specific", "general-glo"):
        raise fail(f"security.ciphering must be service-specific or general-glo, not {ciphering!r}")
    return DeviceType(
        name=name, description=top.text("description", limit=500) or "", make=match.text("make", limit=64),
        model=match.text("model", limit=64), firmware=firmware,
        clock=objects.optional_obis("clock", _CLOCK) or _CLOCK,
        serial=objects.optional_obis("serial", _SERIAL) or _SERIAL,
        registers=registers, load_profile=load, daily=None if daily_at is None else _profile(daily_at, fail),
        event_logs=tuple(logs), relay=objects.optional_obis("disconnect_control"),
        limits=Limits(limits.integer("max_get_with_list", 1, 1000), limits.integer("max_pdu", 64, 0xFFFF)),
        referencing=referencing, security_policy=policy, client_sap=security.integer("client_sap", 0, 0x7F),
        push=PushPolicy(accept_encryption_only=bool(push.boolean("accept_encryption_only"))), ciphering=ciphering)


def read_device_type(path: str | os.PathLike[str]) -> tuple[DeviceType, dict[str, Any]]:
    """A device type file: the type and its document (to store as given)."""
    where = Path(path)
    try:
        document = json.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeviceTypeError(f"cannot read device type file {where}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeviceTypeError(f"device type file {where}: not JSON: {exc}") from None
    return parse_device_type(document, f"device type file {where}"), document


@lru_cache(maxsize=1)
def shipped_types() -> dict[str, DeviceType]:
    """The types shipped with the head-end (``hes/devicetypes/*.json``)."""
    return {t.name: t for t in (read_device_type(path)[0] for path in sorted(SHIPPED.glob("*.json")))}


def default_type() -> DeviceType:
    """The type of a meter whose own type is not known (``DEFAULT_TYPE``)."""
    return shipped_types()[DEFAULT_TYPE]


class Catalogue:
    """The shipped types and the added ones (added ones win on a name), and how a meter finds its type."""

    def __init__(self, added: Iterable[DeviceType] = ()) -> None:
        self.types: dict[str, DeviceType] = {**shipped_types(), **{t.name: t for t in added}}
        self._added = {t.name for t in added}

    def added(self, name: str) -> bool:
        return name in self._added

    def get(self, name: str) -> DeviceType | None:
        return self.types.get(name)

    def for_meter(self, name: str | None, make: str | None, model: str | None, firmware: str | None) -> DeviceType:
        """The meter's type: by its name when set, else the most specific type matching its make, model and
        firmware, else the default (IDIS) type. An unknown name is a ``DeviceTypeError``."""
        if name is not None:
            found = self.types.get(name)
            if found is None:
                raise DeviceTypeError(f"device type {name!r} is not known: hes devicetype add FILE")
            return found
        if make is not None or model is not None:
            matching = [t for t in self.types.values() if (t.make or t.model) and t.matches(make, model, firmware)]
            if matching:
                # A type that names the model and a firmware range says more than one that names only the make.
                return max(matching, key=lambda t: (t.model is not None, t.firmware is not None, self.added(t.name)))
        return self.types[DEFAULT_TYPE]


#: Seconds the types read from a database are used before they are read again (a type added by another
#: process is seen within that time; one added by this process at once).
CATALOGUE_TTL = 60.0
_catalogues: dict[str, tuple[float, Catalogue]] = {}
_keys: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def catalogue(bind: Engine | Connection | Session) -> Catalogue:
    """The shipped and added types of the database ``bind`` is on (cached per database for ``CATALOGUE_TTL``)."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    key = _database_key(engine.engine)
    now = time.monotonic()
    cached = _catalogues.get(key)
    if cached is None or now - cached[0] >= CATALOGUE_TTL:
        if isinstance(bind, Session):
            added = stored_device_types(bind)
        else:
            with Session(bind=bind) as session:
                added = stored_device_types(session)
        cached = _catalogues[key] = (now, Catalogue(added))
    return cached[1]


def cached_catalogue(engine: Engine) -> Catalogue | None:
    """The catalogue of ``engine``'s database when one is cached and fresh (no database work), else None."""
    cached = _catalogues.get(_database_key(engine))
    if cached is None or time.monotonic() - cached[0] >= CATALOGUE_TTL:
        return None
    return cached[1]


def _database_key(engine: Engine) -> str:
    """The database an engine is on (engines of one database share its catalogue); rendered once per engine."""
    key = _keys.get(engine)
    if key is None:
        key = _keys[engine] = engine.url.render_as_string(hide_password=False)
    return key


def forget_catalogue(bind: Engine | Connection) -> None:
    """Read the database's types again at the next use (this process added or replaced one)."""
    _catalogues.pop(_database_key(bind.engine), None)


def stored_device_types(session: Session) -> list[DeviceType]:
    """The types added to the database (``hes devicetype add``); one that no longer parses is left out, logged."""
    out = []
    for name, definition in session.execute(select(DeviceTypeRow.name, DeviceTypeRow.definition)):
        try:
            out.append(parse_device_type(json.loads(definition), f"device type {name} (stored)"))
        except (ValueError, DeviceTypeError) as exc:
            logger.error("stored device type %s is unusable, left out: %s", name, exc)
    return out
