"""The fleet manifest in the head-end's registry import format ``hes-registry/1``: JSON (default) or CSV.

JSON shape (docs/SIMULATORS.md, "The manifest"; every key below is always present, unused ones null,
bytes in hex)::

    {
      "format": "hes-registry/1",
      "concentrators": [
        {"id": "DC0001", "host": "127.0.0.1", "port": 4059, "wport": 1, "client_sap": 1, "network_id": 0,
         "link": "plc", "security": {...the DC's own...}}],
      "meters": [
        {"serial": "SIM000100000", "make": "HES-SIM", "model": "SIM-A", "firmware": "1.0",
         "device_type": "hes-sim-a", "concentrator": "DC0001", "logical_device": 256,
         "physical_address": "0010", "host": null, "port": null, "interface": null, "server_sap": null,
         "hdlc_address": null, "client_sap": 1, "security": {...the meter's own...}},
        {"serial": "P2P000000000", ..., "concentrator": null, "logical_device": null,
         "physical_address": null, "host": "127.0.0.1", "port": 4080, "interface": "wrapper",
         "server_sap": 1, "hdlc_address": null, "client_sap": 1, "security": {...}}],
      "x-simulation": {"generator": "hes sim fleet", "seed": 7,
                       "field_epoch": "2024-03-01T00:00:00+00:00", "time_scale": 1.0}
    }

``security`` is ``{"policy": "none"|"lls"|"hls-gmac", "password", "system_title", "ek", "ak"}``.
Keys beginning with ``x-`` are extensions a head-end ignores; ``x-simulation`` carries what only
the simulator and its test peers need. The CSV form (a path ending in ``.csv``) has one row per
device, a ``kind`` column and the security fields as columns; it has no ``x-simulation``.
The Python side keeps its grouped shape: ``ManifestConcentrator.meters`` are the meters behind a DC,
``Manifest.p2p`` the point-to-point ones.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from simulators.concentrator import PolicyName, SecurityConfig

__all__ = [
    "CSV_COLUMNS",
    "FORMAT",
    "GENERATOR",
    "Manifest",
    "ManifestConcentrator",
    "ManifestDcMeter",
    "ManifestError",
    "ManifestP2p",
    "read_manifest",
    "write_manifest",
]

FORMAT = "hes-registry/1"
GENERATOR = "hes sim fleet"
_OLD_FORMAT = "hes-sim-fleet/1"
_POLICIES = ("none", "lls", "hls-gmac")
_LINKS = ("plc", "rf")
_INTERFACES = ("wrapper", "hdlc")
_SECURITY_COLUMNS = ("security_policy", "password", "system_title", "ek", "ak")
#: The CSV header: one row per device; a column a kind of device does not use is empty.
CSV_COLUMNS = (
    "kind", "id", "serial", "make", "model", "firmware", "device_type", "concentrator", "logical_device",
    "physical_address", "host", "port", "wport", "interface", "server_sap", "hdlc_address", "client_sap",
    "network_id", "link", *_SECURITY_COLUMNS,
)


class ManifestError(ValueError):
    """A manifest that cannot be written or read (one line says which file and why)."""


@dataclass(frozen=True, slots=True)
class ManifestDcMeter:
    """A meter behind a DC: its wPort there (``logical_device``) and its 2-byte gateway address."""

    serial: str
    logical_device: int
    physical_address: bytes
    client_sap: int
    security: SecurityConfig
    make: str | None = None
    model: str | None = None
    firmware: str | None = None
    device_type: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestConcentrator:
    """A DC; ``logical_device`` is its management wPort (``wport`` in the file)."""

    id: str
    host: str
    port: int
    logical_device: int
    client_sap: int
    network_id: int
    security: SecurityConfig
    meters: tuple[ManifestDcMeter, ...]
    link: str | None = "plc"


@dataclass(frozen=True, slots=True)
class ManifestP2p:
    """A point-to-point meter; ``physical_address`` is its HDLC address (``hdlc_address`` in the file)."""

    serial: str
    host: str
    port: int
    interface: str
    client_sap: int
    server_sap: int
    physical_address: int | None
    security: SecurityConfig
    make: str | None = None
    model: str | None = None
    firmware: str | None = None
    device_type: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every device; ``seed``, ``field_epoch`` and ``time_scale`` come from ``x-simulation`` (None without it)."""

    seed: int | str | None
    field_epoch: datetime | None
    time_scale: float | None
    concentrators: tuple[ManifestConcentrator, ...]
    p2p: tuple[ManifestP2p, ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "concentrators": [_dc_json(dc) for dc in self.concentrators],
            "meters": [_dc_meter_json(dc, m) for dc in self.concentrators for m in dc.meters]
            + [_p2p_json(p) for p in self.p2p],
        }
        if self.seed is not None:
            out["x-simulation"] = {
                "generator": GENERATOR,
                "seed": self.seed,
                "field_epoch": None if self.field_epoch is None else self.field_epoch.isoformat(),
                "time_scale": self.time_scale,
            }
        return out

    def to_csv(self) -> str:
        """The same devices as CSV rows (no ``x-simulation``: CSV has nowhere to put it)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for dc in self.concentrators:
            writer.writerow(_csv_row("concentrator", _dc_json(dc)))
        for record in self.to_json()["meters"]:
            writer.writerow(_csv_row("meter", record))
        return buffer.getvalue()

    @classmethod
    def from_json(cls, raw: object) -> Manifest:
        """Parse a manifest; ``ManifestError`` names the first bad field."""
        top = _obj(raw, "manifest")
        _check_format(top.get("format"))
        dcs: dict[str, tuple[ManifestConcentrator, list[ManifestDcMeter]]] = {}
        for n, item in enumerate(_list(top, "concentrators", "manifest")):
            where = f"concentrators[{n}]"
            dc = _obj(item, where)
            ident = _str(dc, "id", where)
            if ident in dcs:
                raise ManifestError(f"{where}.id {ident!r} appears twice")
            link = dc.get("link")
            if link is not None and link not in _LINKS:
                raise ManifestError(f"{where}.link must be one of {', '.join(_LINKS)} or null, not {link!r}")
            dcs[ident] = (ManifestConcentrator(
                ident, _str(dc, "host", where), _int(dc, "port", where), _int(dc, "wport", where),
                _int(dc, "client_sap", where), _int(dc, "network_id", where), _security(dc.get("security"), where),
                (), link,
            ), [])
        p2ps = []
        seen: set[str] = set()
        for n, item in enumerate(_list(top, "meters", "manifest")):
            where = f"meters[{n}]"
            m = _obj(item, where)
            serial = _str(m, "serial", where)
            if serial in seen:
                raise ManifestError(f"{where}.serial {serial!r} appears twice")
            seen.add(serial)
            identity = {key: _optional_str(m, key, where) for key in ("make", "model", "firmware", "device_type")}
            security = _security(m.get("security"), where)
            concentrator = m.get("concentrator")
            if concentrator is not None:
                if not isinstance(concentrator, str) or concentrator not in dcs:
                    raise ManifestError(f"{where}.concentrator {concentrator!r} is not a listed concentrator")
                address = _hex(m, "physical_address", where)
                if len(address) != 2:
                    raise ManifestError(f"{where}.physical_address must be 2 bytes (4 hex digits)")
                dcs[concentrator][1].append(ManifestDcMeter(
                    serial, _int(m, "logical_device", where), address, _int(m, "client_sap", where), security,
                    **identity,
                ))
                continue
            interface = _str(m, "interface", where)
            if interface not in _INTERFACES:
                raise ManifestError(f"{where}.interface must be 'wrapper' or 'hdlc', not {interface!r}")
            hdlc = m.get("hdlc_address")
            if hdlc is not None and (not isinstance(hdlc, int) or isinstance(hdlc, bool) or hdlc < 0):
                raise ManifestError(f"{where}.hdlc_address must be a non-negative integer or null")
            p2ps.append(ManifestP2p(
                serial, _str(m, "host", where), _int(m, "port", where), interface, _int(m, "client_sap", where),
                _int(m, "server_sap", where), hdlc, security, **identity,
            ))
        concentrators = tuple(replace(dc, meters=tuple(meters)) for dc, meters in dcs.values())
        seed, epoch, scale = _simulation(top.get("x-simulation"))
        return cls(seed, epoch, scale, concentrators, tuple(p2ps))

    @classmethod
    def from_csv(cls, text: str) -> Manifest:
        """Parse the CSV form; it is turned into the JSON shape and checked by ``from_json``."""
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ManifestError(f"CSV manifest lacks the column(s) {', '.join(missing)}")
        concentrators: list[dict[str, Any]] = []
        meters: list[dict[str, Any]] = []
        for line, row in enumerate(reader, start=2):
            kind = row["kind"]
            if kind == "concentrator":
                concentrators.append(_from_csv_row(row, line, _DC_KEYS))
            elif kind == "meter":
                meters.append(_from_csv_row(row, line, _METER_KEYS))
            else:
                raise ManifestError(f"CSV line {line}: kind must be 'concentrator' or 'meter', not {kind!r}")
        return cls.from_json({"format": FORMAT, "concentrators": concentrators, "meters": meters})


# --- writing -------------------------------------------------------------------------------------------------


def _dc_json(dc: ManifestConcentrator) -> dict[str, Any]:
    return {
        "id": dc.id, "host": dc.host, "port": dc.port, "wport": dc.logical_device, "client_sap": dc.client_sap,
        "network_id": dc.network_id, "link": dc.link, "security": dc.security.to_json(),
    }


def _dc_meter_json(dc: ManifestConcentrator, m: ManifestDcMeter) -> dict[str, Any]:
    return {
        "serial": m.serial, "make": m.make, "model": m.model, "firmware": m.firmware, "device_type": m.device_type,
        "concentrator": dc.id, "logical_device": m.logical_device, "physical_address": m.physical_address.hex(),
        "host": None, "port": None, "interface": None, "server_sap": None, "hdlc_address": None,
        "client_sap": m.client_sap, "security": m.security.to_json(),
    }


def _p2p_json(p: ManifestP2p) -> dict[str, Any]:
    return {
        "serial": p.serial, "make": p.make, "model": p.model, "firmware": p.firmware, "device_type": p.device_type,
        "concentrator": None, "logical_device": None, "physical_address": None,
        "host": p.host, "port": p.port, "interface": p.interface, "server_sap": p.server_sap,
        "hdlc_address": p.physical_address, "client_sap": p.client_sap, "security": p.security.to_json(),
    }


def _csv_row(kind: str, record: dict[str, Any]) -> dict[str, str]:
    row = {column: "" for column in CSV_COLUMNS}
    row["kind"] = kind
    for key, value in record.items():
        if key == "security":
            for column, field in zip(_SECURITY_COLUMNS, ("policy", "password", "system_title", "ek", "ak"),
                                     strict=True):
                row[column] = "" if value[field] is None else str(value[field])
        elif value is not None:
            row[key] = str(value)
    return row


# --- reading -------------------------------------------------------------------------------------------------

_DC_KEYS = {"id": str, "host": str, "port": int, "wport": int, "client_sap": int, "network_id": int, "link": str}
_METER_KEYS = {
    "serial": str, "make": str, "model": str, "firmware": str, "device_type": str, "concentrator": str,
    "logical_device": int, "physical_address": str, "host": str, "port": int, "interface": str,
    "server_sap": int, "hdlc_address": int, "client_sap": int,
}


def _from_csv_row(row: dict[str, str | None], line: int, keys: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in keys.items():
        text = (row.get(key) or "").strip()
        if not text:
            out[key] = None
        elif kind is int:
            try:
                out[key] = int(text)
            except ValueError:
                raise ManifestError(f"CSV line {line}: {key} {text!r} is not an integer") from None
        else:
            out[key] = text
    security = {}
    for column, field in zip(_SECURITY_COLUMNS, ("policy", "password", "system_title", "ek", "ak"), strict=True):
        text = (row.get(column) or "").strip()
        security[field] = text or None
    out["security"] = security
    return out


def _check_format(found: object) -> None:
    if found == FORMAT:
        return
    if found == _OLD_FORMAT:
        raise ManifestError(f"manifest format {_OLD_FORMAT!r} is no longer read: expected {FORMAT!r} "
                            f"(write it again with hes sim fleet)")
    raise ManifestError(f"manifest format is {found!r}, expected {FORMAT!r}")


def _simulation(raw: object) -> tuple[int | str | None, datetime | None, float | None]:
    if raw is None:
        return None, None, None
    sim = _obj(raw, "x-simulation")
    seed = sim.get("seed")
    if not isinstance(seed, int | str) or isinstance(seed, bool):
        raise ManifestError("x-simulation.seed must be an integer or a string")
    try:
        epoch = datetime.fromisoformat(_str(sim, "field_epoch", "x-simulation"))
    except ValueError:
        raise ManifestError("x-simulation.field_epoch is not an ISO date-time") from None
    if epoch.tzinfo is None:
        raise ManifestError("x-simulation.field_epoch needs a time zone")
    scale = sim.get("time_scale")
    if not isinstance(scale, int | float) or isinstance(scale, bool):
        raise ManifestError("x-simulation.time_scale must be a number")
    return seed, epoch, float(scale)


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where} must be a JSON object")
    return cast(dict[str, Any], value)


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ManifestError(f"{where}.{key} must be a list")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}.{key} must be a non-empty string")
    return value


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestError(f"{where}.{key} must be a string or null")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}.{key} must be a non-negative integer")
    return value


def _hex(obj: dict[str, Any], key: str, where: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ManifestError(f"{where}.{key} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ManifestError(f"{where}.{key} is not valid hex") from None


def _security(raw: object, where: str) -> SecurityConfig:
    where = f"{where}.security"
    obj = _obj(raw, where)
    policy = obj.get("policy")
    if policy not in _POLICIES:
        raise ManifestError(f"{where}.policy must be one of {', '.join(_POLICIES)}")

    def field(name: str) -> bytes | None:
        return None if obj.get(name) is None else _hex(obj, name, where)

    return SecurityConfig(cast(PolicyName, policy), field("password"), field("system_title"), field("ek"),
                          field("ak"))


def _is_csv(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".csv"


def write_manifest(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Write the manifest atomically (temporary file in the same folder, then a rename); CSV for ``*.csv``."""
    target = Path(path)
    text = manifest.to_csv() if _is_csv(target) else json.dumps(manifest.to_json(), indent=2) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ManifestError(f"cannot write manifest {target}: {exc.strerror or exc}") from None


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest file: JSON, or CSV when the name ends in ``.csv``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ManifestError(f"cannot read manifest {path}: {reason or exc}") from None
    if _is_csv(path):
        try:
            return Manifest.from_csv(text)
        except csv.Error as exc:
            raise ManifestError(f"manifest {path} is not valid CSV: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return Manifest.from_json(raw)
