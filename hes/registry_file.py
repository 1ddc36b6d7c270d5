"""The head-end's own registry import format, ``hes-registry/1``: concentrators and meters in JSON or CSV.

Vendor-neutral: what a head-end needs to reach and authenticate each device, nothing of how a
particular field was made (``docs/REGISTRY_FORMAT.md`` is the reference; ``hes registry import``
reads it, ``hes sim fleet --manifest`` writes it). Keys starting with ``x-`` are extensions, ignored.

JSON::

    {"format": "hes-registry/1",
     "concentrators": [{"id": "DC0001", "host": "10.0.0.7", "port": 4059, "wport": 1, "client_sap": 1,
                        "network_id": 0, "link": "plc", "response_deadline_s": null, "max_sessions": null,
                        "security": {"policy": "hls-gmac", "system_title": "...", "ek": "...", "ak": "..."}}],
     "meters": [{"serial": "SIM000100000", "device_type": "hes-sim-a", "make": "...", "model": "...", "firmware": "...",
                 "concentrator": "DC0001", "logical_device": 256, "physical_address": "0010",
                 "client_sap": 1, "security": {"policy": "lls", "password": "3132..."}},
                {"serial": "P2P000000000", "host": "10.1.2.3", "port": 4059, "interface": "wrapper",
                 "server_sap": 1, "hdlc_address": null, "client_sap": 1, "security": {"policy": "none"}}]}

CSV: one header row, one row per device; ``kind`` is ``concentrator`` or ``meter``; the other columns
are the JSON keys (security as ``security_policy``, ``password``, ``system_title``, ``ek``, ``ak``);
an empty cell is a missing value. Bytes are hex everywhere. Every problem is a ``RegistryFileError``
naming the file, the device and the field.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from concentrator.links import MEDIA, Medium
from hes.errors import HesError
from hes.model import Interface, MeterSecurity, Policy

__all__ = ["FORMAT", "ConcentratorEntry", "MeterEntry", "RegistryFile", "RegistryFileError", "read_registry_file"]

FORMAT = "hes-registry/1"
_POLICIES = ("none", "lls", "hls-gmac")
_INTERFACES = ("wrapper", "hdlc")
#: Larger files are not read whole into memory by mistake (a million meters is about 400 MB of JSON).
MAX_BYTES = 2 * 1024**3


class RegistryFileError(HesError):
    """A registry file that cannot be read as ``hes-registry/1``: one line names the file, device and field."""


@dataclass(frozen=True, slots=True)
class ConcentratorEntry:
    id: str
    host: str
    port: int
    wport: int
    client_sap: int
    network_id: int
    medium: Medium
    response_deadline: float | None
    max_sessions: int | None
    security: MeterSecurity


@dataclass(frozen=True, slots=True)
class MeterEntry:
    """A meter: behind ``concentrator`` (``logical_device``, ``physical_address``) or direct (``host``, ``port``)."""

    serial: str
    client_sap: int
    security: MeterSecurity
    concentrator: str | None = None
    logical_device: int | None = None
    physical_address: bytes | None = None
    host: str | None = None
    port: int | None = None
    interface: Interface = "wrapper"
    server_sap: int = 1
    hdlc_address: int | None = None
    device_type: str | None = None
    make: str | None = None
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryFile:
    concentrators: tuple[ConcentratorEntry, ...]
    meters: tuple[MeterEntry, ...]


class _Fields:
    """One device's fields with typed getters; every error names ``where``."""

    def __init__(self, raw: Mapping[str, Any], where: str, fail: Callable[[str], RegistryFileError]) -> None:
        self.raw = raw
        self.where = where
        self.fail = fail

    def _value(self, key: str) -> Any:
        value = self.raw.get(key)
        return None if value == "" else value

    def text(self, key: str, *, required: bool = False, limit: int = 64) -> str | None:
        value = self._value(key)
        if value is None:
            if required:
                raise self.fail(f"{self.where}: {key} is missing")
            return None
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit or not value.isprintable():
            raise self.fail(f"{self.where}: {key} must be 1 to {limit} printable characters")
        return value.strip()

    def integer(self, key: str, default: int | None, low: int, high: int) -> int | None:
        value = self._value(key)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise self.fail(f"{self.where}: {key} {value!r} is not a whole number") from None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"{self.where}: {key} must be a whole number from {low} to {high}")
        return value

    def required(self, key: str, low: int, high: int) -> int:
        value = self.integer(key, None, low, high)
        if value is None:
            raise self.fail(f"{self.where}: {key} is missing")
        return value

    def number(self, key: str) -> float | None:
        value = self._value(key)
        if value is None:
            return None
        try:
            number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else -1.0
        except ValueError:
            number = -1.0
        if not 0 < number <= 3600:
            raise self.fail(f"{self.where}: {key} must be a number of seconds from 0 to 3600")
        return number

    def hexed(self, key: str, sizes: tuple[int, ...] | None = None) -> bytes | None:
        value = self._value(key)
        if value is None:
            return None
        try:
            data = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            data = None
        if data is None:
            raise self.fail(f"{self.where}: {key} is not hex")
        if sizes is not None and len(data) not in sizes:
            raise self.fail(f"{self.where}: {key} must be {' or '.join(map(str, sizes))} bytes, not {len(data)}")
        return data


def _security(fields: _Fields, raw: Mapping[str, Any]) -> MeterSecurity:
    where = f"{fields.where} security"
    sec = _Fields(raw, where, fields.fail)
    policy = sec.text("policy") or "none"
    if policy not in _POLICIES:
        raise fields.fail(f"{where}: policy must be one of {', '.join(_POLICIES)}, not {policy!r}")
    security = MeterSecurity(cast(Policy, policy), sec.hexed("password"), sec.hexed("system_title", (8,)),
                             sec.hexed("ek", (16,)), sec.hexed("ak", (16,)))
    if policy == "lls" and not security.password:
        raise fields.fail(f"{where}: LLS needs a password")
    if policy == "hls-gmac" and (security.system_title is None or security.ek is None or security.ak is None):
        raise fields.fail(f"{where}: HLS-GMAC needs system_title, ek and ak")
    return security


def _concentrator(raw: Mapping[str, Any], security: Mapping[str, Any], where: str,
                  fail: Callable[[str], RegistryFileError]) -> ConcentratorEntry:
    f = _Fields(raw, where, fail)
    ident = f.text("id", required=True)
    f.where = where = f"{where} ({ident})"
    medium = f.text("link") or "plc"
    if medium not in MEDIA:
        raise fail(f"{where}: link must be one of {', '.join(MEDIA)}, not {medium!r}")
    sessions = f.integer("max_sessions", None, 1, 1000)
    return ConcentratorEntry(
        cast(str, ident), cast(str, f.text("host", required=True, limit=255)), f.required("port", 1, 65535),
        cast(int, f.integer("wport", 1, 0, 0xFFFF)), cast(int, f.integer("client_sap", 1, 0, 0x7F)),
        cast(int, f.integer("network_id", 0, 0, 0xFF)), medium, f.number("response_deadline_s"), sessions,
        _security(f, security))


def _meter(raw: Mapping[str, Any], security: Mapping[str, Any], where: str,
           fail: Callable[[str], RegistryFileError]) -> MeterEntry:
    f = _Fields(raw, where, fail)
    serial = cast(str, f.text("serial", required=True))
    f.where = where = f"{where} ({serial})"
    common = {"serial": serial, "client_sap": cast(int, f.integer("client_sap", 1, 0, 0x3FFF)),
              "security": _security(f, security), "device_type": f.text("device_type"), "make": f.text("make"),
              "model": f.text("model"), "firmware": f.text("firmware", limit=32)}
    dc = f.text("concentrator")
    if dc is not None:
        if f.text("host", limit=255) is not None:
            raise fail(f"{where}: a meter behind concentrator {dc} has no host of its own")
        address = f.hexed("physical_address", tuple(range(1, 17)))
        if address is None:
            raise fail(f"{where}: physical_address is missing (the gateway address behind {dc})")
        return MeterEntry(**common, concentrator=dc,  # type: ignore[arg-type]
                          logical_device=f.integer("logical_device", None, 0, 0xFFFF),
                          physical_address=address)
    host = f.text("host", limit=255)
    if host is None:
        raise fail(f"{where}: a meter needs a concentrator or a host")
    interface = f.text("interface") or "wrapper"
    if interface not in _INTERFACES:
        raise fail(f"{where}: interface must be one of {', '.join(_INTERFACES)}, not {interface!r}")
    return MeterEntry(**common, host=host, port=f.required("port", 1, 65535),  # type: ignore[arg-type]
                      interface=cast(Interface, interface), server_sap=cast(int, f.integer("server_sap", 1, 0, 0x3FFF)),
                      hdlc_address=f.integer("hdlc_address", None, 0, 0x3FFF))


_SECURITY_COLUMNS = {"security_policy": "policy", "password": "password", "system_title": "system_title", "ek": "ek",
                     "ak": "ak"}


def _from_json(text: str, fail: Callable[[str], RegistryFileError]) -> RegistryFile:
    try:
        top = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(top, dict):
        raise fail("the top level must be a JSON object")
    if top.get("format") != FORMAT:
        raise fail(f"format is {top.get('format')!r}, expected {FORMAT!r}")
    def objects(key: str) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
        items = top.get(key, [])
        if not isinstance(items, list):
            raise fail(f"{key} must be a list")
        out = []
        for n, item in enumerate(items):
            where = f"{key}[{n}]"
            if not isinstance(item, dict):
                raise fail(f"{where} must be a JSON object")
            security = item.get("security") or {}
            if not isinstance(security, dict):
                raise fail(f"{where}: security must be a JSON object")
            out.append(({k: v for k, v in item.items() if not k.startswith("x-")}, security, where))
        return out

    dcs = tuple(_concentrator(item, security, where, fail) for item, security, where in objects("concentrators"))
    meters = tuple(_meter(item, security, where, fail) for item, security, where in objects("meters"))
    return RegistryFile(dcs, meters)


def _from_csv(text: str, fail: Callable[[str], RegistryFileError]) -> RegistryFile:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "kind" not in reader.fieldnames:
        raise fail("the CSV header must have a kind column")
    dcs: list[ConcentratorEntry] = []
    meters: list[MeterEntry] = []
    for row in reader:
        where = f"line {reader.line_num}"
        kind = (row.get("kind") or "").strip()
        fields = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()
                  if k is not None and k not in _SECURITY_COLUMNS and not k.startswith("x-")}
        security = {name: (row.get(column) or "").strip() for column, name in _SECURITY_COLUMNS.items()}
        if kind == "concentrator":
            dcs.append(_concentrator(fields, security, where, fail))
        elif kind == "meter":
            meters.append(_meter(fields, security, where, fail))
        else:
            raise fail(f"{where}: kind must be concentrator or meter, not {kind!r}")
    return RegistryFile(tuple(dcs), tuple(meters))


def read_registry_file(path: str | os.PathLike[str]) -> RegistryFile:
    """Read a registry file (CSV when its name ends in ``.csv``, else JSON); ``RegistryFileError`` on any problem."""
    where = Path(path)

    def fail(message: str) -> RegistryFileError:
        return RegistryFileError(f"registry file {where}: {message}")

    try:
        if where.stat().st_size > MAX_BYTES:
            raise fail(f"larger than {MAX_BYTES // 1024**2} MiB")
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryFileError(f"cannot read registry file {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise fail("not UTF-8 text") from None
    parsed = _from_csv(text, fail) if where.suffix.lower() == ".csv" else _from_json(text, fail)
    seen_dcs: set[str] = set()
    for dc in parsed.concentrators:
        if dc.id in seen_dcs:
            raise fail(f"concentrator {dc.id} is listed twice")
        seen_dcs.add(dc.id)
    seen: set[str] = set()
    for meter in parsed.meters:
        if meter.serial in seen:
            raise fail(f"meter {meter.serial} is listed twice")
        seen.add(meter.serial)
    return parsed
