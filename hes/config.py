"""The head-end's settings, read from the environment once, with defaults for the embedded set-up.

| variable | default | meaning |
|---|---|---|
| ``HES_DATABASE_URL`` | ``sqlite:///hes.db`` (``./hes.db`` in the working folder) | the HES database |
| ``HES_LEGACY_DATABASE_URL`` | ``sqlite:///hes-legacy.db`` | the legacy integration database (CIM) |
| ``HES_DATA_DIR`` | ``./hes-data`` | where generated files live (the master key) |
| ``HES_MASTER_KEY_FILE`` | ``$HES_DATA_DIR/master.key`` | master key for keys at rest (made on first use, mode 600) |
| ``HES_MQTT_URL`` | unset: no event bus | e.g. ``mqtt://127.0.0.1:1883`` |
| ``HES_MQTT_MIN_CRITICALITY`` | ``warning`` | events below it (info < warning < alarm < critical) are not published |
| ``HES_PUSH_LISTEN`` | ``127.0.0.1:4059`` | where ``hes run`` listens for pushes (Data/EventNotification) |
| ``HES_EVENT_TABLE`` | unset: the shipped table | JSON file of event names and criticalities over the defaults |
| ``HES_PUSH_UDP`` | ``true`` | ``false``: the push listener takes TCP only (else UDP too, same address and port) |
| ``HES_DISCONNECT_ON_TAMPER`` | ``false`` | ``true``: a pushed tamper event disconnects the meter (audited) |
| ``HES_CIM_OUTBOX`` | ``on`` | ``off``: stored readings and events queue no CIM message |
| ``HES_CIM_REINJECT_AFTER`` | ``3600`` | seconds before a failed CIM delivery is re-injected (same MessageID) |
| ``HES_CIM_SPLIT`` | ``meter-day`` | how CIM messages are cut: ``meter-day``, ``meter`` or ``all`` (per store) |
| ``HES_CIM_MAX_VALUES`` | ``10000`` | at most this many readings or events in one CIM message |
| ``HES_CIM_TABLES`` | unset: ``cim/defaults.json`` | JSON file of the CIM codes (ReadingTypes, events, qualities) |
| ``HES_CIM_XSD_DIR`` | unset | folder of the IEC XSDs: when set, delivery validates every message against them |
| ``HES_DEADLINE_PLC`` / ``_RF`` / ``_IP`` | ``90`` / ``30`` / ``20`` | seconds to wait for each answer through a PLC
  gateway, an RF gateway, or over IP only (a DC's own tables, a point-to-point meter); a DC's own setting wins |
| ``HES_CONCENTRATOR_CLOCK_TOLERANCE`` | ``10`` | seconds a DC's clock may be off before a contact says so (WARN) |
| ``HES_CONCENTRATOR_CLOCK_EVERY`` | ``3600`` | a contact reads the DC's clock when the last reading is older
  (``0``: at every contact; ``off``: only ``hes concentrator sync`` and ``clock sync`` read it) |

The databases stay beside the working folder (``./hes.db`` as README and DESIGN say) so a first
``hes demo`` needs nothing set; only generated secrets go to the data folder. ``postgresql://``
URLs are given the psycopg (3) driver, the one installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from concentrator.clock import DEFAULT_POLICY, ClockError, ClockPolicy
from concentrator.links import DEFAULT_DEADLINES, DeadlineError, Deadlines
from hes.errors import HesError

__all__ = [
    "ConfigError",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_DATA_DIR",
    "DEFAULT_LEGACY_DATABASE_URL",
    "MASTER_KEY_NAME",
    "Settings",
    "load_settings",
    "normalise_database_url",
    "redact_url",
]

DEFAULT_DATABASE_URL = "sqlite:///hes.db"
DEFAULT_LEGACY_DATABASE_URL = "sqlite:///hes-legacy.db"
DEFAULT_DATA_DIR = "hes-data"
MASTER_KEY_NAME = "master.key"


class ConfigError(HesError):
    """A setting that cannot be used (bad URL, unusable path); fixing the environment is needed, not a retry."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the head-end keeps its state and how it reaches its services."""

    database_url: str = DEFAULT_DATABASE_URL
    legacy_database_url: str = DEFAULT_LEGACY_DATABASE_URL
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    master_key_file: Path = Path(DEFAULT_DATA_DIR) / MASTER_KEY_NAME
    mqtt_url: str | None = None
    mqtt_min_criticality: str = "warning"
    push_host: str = "127.0.0.1"
    push_port: int = 4059
    event_table: Path | None = None
    disconnect_on_tamper: bool = False
    push_udp: bool = True
    cim_outbox: bool = True
    cim_reinject_after_s: float = 3600.0
    cim_split: str = "meter-day"
    cim_max_values: int = 10_000
    cim_tables: Path | None = None
    cim_xsd_dir: Path | None = None
    deadlines: Deadlines = DEFAULT_DEADLINES
    dc_clock: ClockPolicy = DEFAULT_POLICY


def normalise_database_url(url: str, variable: str = "HES_DATABASE_URL") -> str:
    """``url`` with the installed driver made explicit; ``ConfigError`` when it is not SQLite or PostgreSQL."""
    url = url.strip()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme in ("sqlite", "postgresql+psycopg", "sqlite+pysqlite"):
        return url
    raise ConfigError(f"{variable}={redact_url(url)!s}: expected sqlite:///FILE or postgresql://USER@HOST/DB")


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line or an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) of a listener; ``ConfigError`` names ``HES_PUSH_LISTEN``."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"HES_PUSH_LISTEN={value}: expected HOST:PORT, e.g. 0.0.0.0:4059")
    return host, int(port)


def _cim_settings(text: Callable[[str], str | None]) -> dict[str, Any]:
    """The ``HES_CIM_*`` settings, checked; ``ConfigError`` names the bad variable."""
    outbox = (text("HES_CIM_OUTBOX") or "on").lower()
    if outbox not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"HES_CIM_OUTBOX={outbox}: on or off")
    delay = text("HES_CIM_REINJECT_AFTER") or "3600"
    try:
        reinject = float(delay)
    except ValueError:
        reinject = -1.0
    if not reinject >= 0 or reinject == float("inf"):
        raise ConfigError(f"HES_CIM_REINJECT_AFTER={delay}: a number of seconds, 0 or more")
    split = text("HES_CIM_SPLIT") or "meter-day"
    if split not in ("meter-day", "meter", "all"):
        raise ConfigError(f"HES_CIM_SPLIT={split}: meter-day, meter or all")
    size = text("HES_CIM_MAX_VALUES") or "10000"
    if not size.isdigit() or int(size) < 1:
        raise ConfigError(f"HES_CIM_MAX_VALUES={size}: a positive whole number")
    tables, xsd = text("HES_CIM_TABLES"), text("HES_CIM_XSD_DIR")
    return {
        "cim_outbox": outbox in ("on", "true", "1", "yes"),
        "cim_reinject_after_s": reinject,
        "cim_split": split,
        "cim_max_values": int(size),
        "cim_tables": None if tables is None else Path(tables),
        "cim_xsd_dir": None if xsd is None else Path(xsd),
    }


def _deadlines(text: Callable[[str], str | None]) -> Deadlines:
    """The ``HES_DEADLINE_*`` response deadlines over the defaults; ``ConfigError`` names the bad variable."""
    values: dict[str, float] = {}
    for medium in ("plc", "rf", "ip"):
        name = f"HES_DEADLINE_{medium.upper()}"
        given = text(name)
        if given is None:
            continue
        try:
            values[medium] = float(given)
            Deadlines(**values)
        except (ValueError, DeadlineError):
            raise ConfigError(f"{name}={given}: a positive number of seconds") from None
    return Deadlines(**values) if values else DEFAULT_DEADLINES


def _dc_clock(text: Callable[[str], str | None]) -> ClockPolicy:
    """``HES_CONCENTRATOR_CLOCK_*`` over the defaults; ``ConfigError`` names the bad variable."""
    tolerance, every = DEFAULT_POLICY.tolerance, DEFAULT_POLICY.every
    given = text("HES_CONCENTRATOR_CLOCK_TOLERANCE")
    if given is not None:
        try:
            tolerance = float(given)
            ClockPolicy(tolerance, every)
        except (ValueError, ClockError):
            raise ConfigError(f"HES_CONCENTRATOR_CLOCK_TOLERANCE={given}: seconds, 0 or more") from None
    given = text("HES_CONCENTRATOR_CLOCK_EVERY")
    if given is not None and given.lower() == "off":
        return ClockPolicy(tolerance, None)
    if given is not None:
        try:
            seconds = float(given)
            if not 0 <= seconds <= 31 * 86400:
                raise ValueError(given)
        except ValueError:
            raise ConfigError(f"HES_CONCENTRATOR_CLOCK_EVERY={given}: seconds, from 0 (every contact) "
                              "to 2678400, or off") from None
        every = timedelta(seconds=seconds)
    return ClockPolicy(tolerance, every)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``); ``ConfigError`` names the bad variable."""
    env = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    data_dir = Path(text("HES_DATA_DIR") or DEFAULT_DATA_DIR)
    key_file = Path(text("HES_MASTER_KEY_FILE") or data_dir / MASTER_KEY_NAME)
    mqtt = text("HES_MQTT_URL")
    if mqtt is not None and not mqtt.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"HES_MQTT_URL={redact_url(mqtt)}: expected mqtt://HOST[:PORT]")
    criticality = (text("HES_MQTT_MIN_CRITICALITY") or "warning").lower()
    if criticality not in ("info", "warning", "alarm", "critical"):
        raise ConfigError(f"HES_MQTT_MIN_CRITICALITY={criticality}: one of info, warning, alarm, critical")
    push_host, push_port = _listen_address(text("HES_PUSH_LISTEN") or "127.0.0.1:4059")
    tamper = (text("HES_DISCONNECT_ON_TAMPER") or "false").lower()
    if tamper not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ConfigError(f"HES_DISCONNECT_ON_TAMPER={tamper}: true or false")
    udp = (text("HES_PUSH_UDP") or "true").lower()
    if udp not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ConfigError(f"HES_PUSH_UDP={udp}: true or false")
    event_table = text("HES_EVENT_TABLE")
    cim = _cim_settings(text)
    return Settings(
        **cim,
        deadlines=_deadlines(text),
        dc_clock=_dc_clock(text),
        mqtt_min_criticality=criticality,
        push_host=push_host,
        push_port=push_port,
        event_table=None if event_table is None else Path(event_table),
        disconnect_on_tamper=tamper in ("true", "1", "yes", "on"),
        push_udp=udp in ("true", "1", "yes", "on"),
        database_url=normalise_database_url(text("HES_DATABASE_URL") or DEFAULT_DATABASE_URL),
        legacy_database_url=normalise_database_url(
            text("HES_LEGACY_DATABASE_URL") or DEFAULT_LEGACY_DATABASE_URL, "HES_LEGACY_DATABASE_URL"
        ),
        data_dir=data_dir,
        master_key_file=key_file,
        mqtt_url=mqtt,
    )
