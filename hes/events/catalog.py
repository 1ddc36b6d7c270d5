"""The configurable event table: per log, event code -> name, criticality and whether it is tamper.

Defaults ship in ``catalog.json`` beside this module (the IDIS standard, fraud, disconnector and
power-quality logs, the alarm register's bits, the concentrator's own log and the head-end's own
alarms). ``HES_EVENT_TABLE`` names a JSON file of the same form whose entries replace or add to
the defaults, code by code; a log it names that does not exist yet is added whole. An unknown
code is named ``event N`` with the table's ``unknown_criticality`` (warning by default), so an
event the table does not know is still stored and passed on rather than hidden.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from hes.errors import HesError

__all__ = [
    "CATALOG_FILE",
    "Catalog",
    "CatalogError",
    "Criticality",
    "EventDefinition",
    "EventLogDefinition",
    "default_catalog",
    "load_catalog",
]

CATALOG_FILE = Path(__file__).with_name("catalog.json")


class CatalogError(HesError):
    """An event table that cannot be used (unreadable file, bad JSON, unknown criticality): fix the file."""


class Criticality(IntEnum):
    """How urgently an event must be known at the centre; ordered, so thresholds compare."""

    INFO = 0
    WARNING = 1
    ALARM = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, text: str, where: str = "criticality") -> Criticality:
        try:
            return cls[text.strip().upper()]
        except (KeyError, AttributeError):
            names = ", ".join(c.name.lower() for c in cls)
            raise CatalogError(f"{where}: {text!r} is not a criticality (one of {names})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class EventDefinition:
    """What the head-end makes of one code of one log."""

    log: str
    code: int
    name: str
    criticality: Criticality
    tamper: bool = False
    known: bool = True


@dataclass(frozen=True, slots=True)
class EventLogDefinition:
    """One log: its name, the device kind that keeps it, its OBIS code, and its codes."""

    name: str
    device: str  # meter, concentrator, head-end
    obis: str
    events: dict[int, EventDefinition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The event table (see the module docstring)."""

    logs: dict[str, EventLogDefinition]
    unknown_criticality: Criticality = Criticality.WARNING

    def log(self, name: str) -> EventLogDefinition:
        found = self.logs.get(name)
        if found is None:
            raise CatalogError(f"no event log {name!r} in the event table (known: {', '.join(sorted(self.logs))})")
        return found

    def log_for_obis(self, obis: str, device: str = "meter") -> EventLogDefinition | None:
        """The log a device of kind ``device`` keeps at ``obis`` (None when the table has none)."""
        for definition in self.logs.values():
            if definition.obis == obis and definition.device == device:
                return definition
        return None

    def lookup(self, log: str, code: int) -> EventDefinition:
        """The definition of ``code`` in the log named ``log``; unknown codes get a generic name."""
        definition = self.logs.get(log)
        if definition is not None:
            found = definition.events.get(code)
            if found is not None:
                return found
        return EventDefinition(log, code, f"event {code}", self.unknown_criticality, known=False)

    def lookup_obis(self, obis: str, code: int, device: str = "meter") -> EventDefinition:
        """As ``lookup``, for a log named by its OBIS code on a device of kind ``device``."""
        definition = self.log_for_obis(obis, device)
        return self.lookup(definition.name if definition is not None else obis, code)


def _parse(document: Any, where: str) -> tuple[dict[str, EventLogDefinition], Criticality | None]:
    if not isinstance(document, dict) or not isinstance(document.get("logs", {}), dict):
        raise CatalogError(f"{where}: expected an object with a 'logs' object")
    unknown = document.get("unknown_criticality")
    unknown_level = None if unknown is None else Criticality.parse(str(unknown), f"{where}: unknown_criticality")
    logs: dict[str, EventLogDefinition] = {}
    for name, body in document.get("logs", {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("events", {}), dict):
            raise CatalogError(f"{where}: log {name!r} must be an object with an 'events' object")
        events: dict[int, EventDefinition] = {}
        for code_text, entry in body.get("events", {}).items():
            at = f"{where}: log {name!r} code {code_text!r}"
            try:
                code = int(code_text)
            except ValueError:
                raise CatalogError(f"{at}: the code is not an integer") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
                raise CatalogError(f"{at}: expected an object with a non-empty 'name'")
            events[code] = EventDefinition(
                str(name), code, entry["name"].strip()[:128],
                Criticality.parse(str(entry.get("criticality", "info")), at), bool(entry.get("tamper", False)),
            )
        logs[str(name)] = EventLogDefinition(str(name), str(body.get("device", "meter")), str(body.get("obis", "")),
                                             events)
    return logs, unknown_level


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"event table {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"event table {path}: not JSON: {exc}") from None


def _merge(base: Catalog, path: Path) -> Catalog:
    logs, unknown = _parse(_read(path), str(path))
    merged = dict(base.logs)
    for name, override in logs.items():
        current = merged.get(name)
        if current is None:
            if not override.obis:
                raise CatalogError(f"{path}: new log {name!r} needs its 'obis'")
            merged[name] = override
            continue
        merged[name] = EventLogDefinition(name, current.device if override.device == "meter" else override.device,
                                          override.obis or current.obis, {**current.events, **override.events})
    return Catalog(merged, unknown if unknown is not None else base.unknown_criticality)


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The table shipped with the head-end, without any override."""
    logs, unknown = _parse(_read(CATALOG_FILE), str(CATALOG_FILE))
    return Catalog(logs, unknown or Criticality.WARNING)


@lru_cache(maxsize=8)
def _load(override: str | None) -> Catalog:
    base = default_catalog()
    return base if override is None else _merge(base, Path(override))


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """The event table: the defaults, with ``path`` (default: ``HES_EVENT_TABLE`` when set) merged over them."""
    if path is None:
        path = os.environ.get("HES_EVENT_TABLE", "").strip() or None
    return _load(None if path is None else str(path))
