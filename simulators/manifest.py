"""The fleet manifest: the JSON file `hes sim fleet` writes and `hes registry import` reads.

Shape (issue 3 item 7; every key below is always present, unused security fields are null)::

    {
      "format": "hes-sim-fleet/1", "seed": 7, "field_epoch": "2024-03-01T00:00:00+00:00", "time_scale": 1.0,
      "concentrators": [
        {"id": "DC0001", "host": "127.0.0.1", "port": 4059, "logical_device": 1, "client_sap": 1,
         "network_id": 0, "security": {...the DC's own...},
         "meters": [{"serial": "SIM000100000", "logical_device": 256, "physical_address": "0010",
                     "client_sap": 1, "security": {...the meter's own, for gateway reads...}}]}
      ],
      "p2p": [{"serial": "P2P000000000", "host": "127.0.0.1", "port": 4080, "interface": "wrapper",
               "client_sap": 1, "server_sap": 1, "physical_address": null, "security": {...}}]
    }

``security`` is ``{"policy": "none"|"lls"|"hls-gmac", "password", "system_title", "ek", "ak"}`` in hex.
A DC meter is read concentrated at the DC's wPort ``logical_device`` with the DC's security, or end
to end through the gateway (``network_id``, ``physical_address``) with its own ``security``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from simulators.concentrator import PolicyName, SecurityConfig

__all__ = [
    "FORMAT",
    "Manifest",
    "ManifestConcentrator",
    "ManifestDcMeter",
    "ManifestError",
    "ManifestP2p",
    "read_manifest",
    "write_manifest",
]

FORMAT = "hes-sim-fleet/1"
_POLICIES = ("none", "lls", "hls-gmac")


class ManifestError(ValueError):
    """A manifest that cannot be written or read (one line says which file and why)."""


@dataclass(frozen=True, slots=True)
class ManifestDcMeter:
    serial: str
    logical_device: int
    physical_address: bytes
    client_sap: int
    security: SecurityConfig


@dataclass(frozen=True, slots=True)
class ManifestConcentrator:
    id: str
    host: str
    port: int
    logical_device: int
    client_sap: int
    network_id: int
    security: SecurityConfig
    meters: tuple[ManifestDcMeter, ...]


@dataclass(frozen=True, slots=True)
class ManifestP2p:
    serial: str
    host: str
    port: int
    interface: str
    client_sap: int
    server_sap: int
    physical_address: int | None
    security: SecurityConfig


@dataclass(frozen=True, slots=True)
class Manifest:
    seed: int | str
    field_epoch: datetime
    time_scale: float
    concentrators: tuple[ManifestConcentrator, ...]
    p2p: tuple[ManifestP2p, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seed": self.seed,
            "field_epoch": self.field_epoch.isoformat(),
            "time_scale": self.time_scale,
            "concentrators": [
                {
                    "id": dc.id,
                    "host": dc.host,
                    "port": dc.port,
                    "logical_device": dc.logical_device,
                    "client_sap": dc.client_sap,
                    "network_id": dc.network_id,
                    "security": dc.security.to_json(),
                    "meters": [
                        {
                            "serial": m.serial,
                            "logical_device": m.logical_device,
                            "physical_address": m.physical_address.hex(),
                            "client_sap": m.client_sap,
                            "security": m.security.to_json(),
                        }
                        for m in dc.meters
                    ],
                }
                for dc in self.concentrators
            ],
            "p2p": [
                {
                    "serial": p.serial,
                    "host": p.host,
                    "port": p.port,
                    "interface": p.interface,
                    "client_sap": p.client_sap,
                    "server_sap": p.server_sap,
                    "physical_address": p.physical_address,
                    "security": p.security.to_json(),
                }
                for p in self.p2p
            ],
        }

    @classmethod
    def from_json(cls, raw: object) -> Manifest:
        """Parse a manifest; ``ManifestError`` names the first bad field."""
        top = _obj(raw, "manifest")
        if top.get("format") != FORMAT:
            raise ManifestError(f"manifest format is {top.get('format')!r}, expected {FORMAT!r}")
        seed = top.get("seed")
        if not isinstance(seed, int | str) or isinstance(seed, bool):
            raise ManifestError("manifest seed must be an integer or a string")
        try:
            epoch = datetime.fromisoformat(_str(top, "field_epoch", "manifest"))
        except ValueError:
            raise ManifestError("manifest field_epoch is not an ISO date-time") from None
        scale = top.get("time_scale")
        if not isinstance(scale, int | float) or isinstance(scale, bool):
            raise ManifestError("manifest time_scale must be a number")
        dcs = []
        for n, item in enumerate(_list(top, "concentrators", "manifest")):
            where = f"concentrators[{n}]"
            dc = _obj(item, where)
            meters = []
            for k, m in enumerate(_list(dc, "meters", where)):
                mw = f"{where}.meters[{k}]"
                mo = _obj(m, mw)
                meters.append(ManifestDcMeter(
                    _str(mo, "serial", mw), _int(mo, "logical_device", mw), _hex(mo, "physical_address", mw),
                    _int(mo, "client_sap", mw), _security(mo.get("security"), mw),
                ))
            dcs.append(ManifestConcentrator(
                _str(dc, "id", where), _str(dc, "host", where), _int(dc, "port", where),
                _int(dc, "logical_device", where), _int(dc, "client_sap", where), _int(dc, "network_id", where),
                _security(dc.get("security"), where), tuple(meters),
            ))
        p2ps = []
        for n, item in enumerate(_list(top, "p2p", "manifest")):
            where = f"p2p[{n}]"
            p = _obj(item, where)
            interface = _str(p, "interface", where)
            if interface not in ("wrapper", "hdlc"):
                raise ManifestError(f"{where}.interface must be 'wrapper' or 'hdlc', not {interface!r}")
            physical = p.get("physical_address")
            if physical is not None and (not isinstance(physical, int) or isinstance(physical, bool)):
                raise ManifestError(f"{where}.physical_address must be an integer or null")
            p2ps.append(ManifestP2p(
                _str(p, "serial", where), _str(p, "host", where), _int(p, "port", where), interface,
                _int(p, "client_sap", where), _int(p, "server_sap", where), physical,
                _security(p.get("security"), where),
            ))
        return cls(seed, epoch, float(scale), tuple(dcs), tuple(p2ps))


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


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}.{key} must be a non-negative integer")
    return value


def _hex(obj: dict[str, Any], key: str, where: str, *, optional: bool = False) -> bytes:
    value = obj.get(key)
    if value is None and optional:
        return b""
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


def write_manifest(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Write the manifest atomically (temporary file in the same folder, then a rename)."""
    target = Path(path)
    text = json.dumps(manifest.to_json(), indent=2) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ManifestError(f"cannot write manifest {target}: {exc.strerror or exc}") from None


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return Manifest.from_json(raw)
