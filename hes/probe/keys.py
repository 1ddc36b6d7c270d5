"""Key files for field devices: the keys an optical probe needs, encrypted with a passphrase, expiring.

The head-end exports (``export_key_file``) the security of the meters and concentrators a
technician will read locally, a block of invocation counters reserved for each ciphered
association, and a random bundle key (HMAC) it keeps itself, encrypted with the master key, to
verify the bundles made with this file. The field device opens the file with the passphrase
(``open_key_file``) and never needs the master key.

File format (JSON): a public header (format, export id, creation and expiry times, scrypt
parameters and salt), a 96-bit nonce, and the AES-256-GCM ciphertext of the contents, with the
header as associated data: the expiry cannot be moved without the passphrase, and a wrong
passphrase or any changed byte gives the same one-line refusal. An expired file is refused too.

Invocation counters: the export moves the head-end's stored counter of every (device, client
SAP) past a block (``reserve_counters``), so the head-end never uses the block's counters; the
probe takes counters only from its block and writes the next free one back into the key file
(re-encrypted, atomically) before a session uses them, as the head-end does in its database. So
a probe killed mid-read skips counters but never reuses one. One key file belongs to one field
device: two copies used on two devices would share the block.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hes.db.counters import reserve_counters
from hes.db.engine import session_factory, storage_errors
from hes.db.models import utcnow
from hes.db.orders import record_audit
from hes.errors import HesError
from hes.keys import secret_aad
from hes.model import CounterReservation, DirectRoute, MeterSecurity, MeterTarget, Policy, ViaConcentrator
from hes.probe.models import FieldKeyExport
from hes.registry import Registry, RegistryError

__all__ = [
    "DEFAULT_COUNTER_BLOCK",
    "MAX_VALIDITY",
    "CounterBlock",
    "DeviceKeys",
    "KeyFile",
    "KeyFileContent",
    "KeyFileError",
    "bundle_key_aad",
    "export_key_file",
    "open_key_file",
    "parse_validity",
    "write_key_file",
]

FORMAT = "hes-probe-keys"
VERSION = 1
#: Invocation counters reserved per (device, client SAP) and key file: a month of daily probe reads.
DEFAULT_COUNTER_BLOCK = 10_000
#: The longest a key file may be valid: keys in the field are a risk, so they expire.
MAX_VALIDITY = timedelta(days=90)
MIN_PASSPHRASE = 8
# scrypt at 2**15 x 8: 32 MiB and about 0.1 s per opening; a file asking for more than 2**20 is refused.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_MAX_SCRYPT_N = 2**20
_MAX_FILE = 16 * 1024 * 1024


class KeyFileError(HesError):
    """A key file that cannot be made or used: wrong passphrase, modified, expired, unreadable, bad request."""


def bundle_key_aad(export_id: str) -> bytes:
    """The associated data of a bundle key encrypted with the master key."""
    return secret_aad("field-export", export_id, "bundle-key")


def parse_validity(text: str) -> timedelta:
    """``7d``, ``12h`` or ``90m`` as a duration (``KeyFileError`` when unreadable, empty or above 90 days)."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*([dhm])\s*", text)
    if match is None:
        raise KeyFileError(f"--expires {text!r}: a number of days, hours or minutes, e.g. 7d, 12h, 90m")
    number, unit = int(match.group(1)), match.group(2)
    delta = {"d": timedelta(days=number), "h": timedelta(hours=number), "m": timedelta(minutes=number)}[unit]
    if delta <= timedelta(0):
        raise KeyFileError(f"--expires {text!r}: must be in the future")
    if delta > MAX_VALIDITY:
        raise KeyFileError(f"--expires {text!r}: at most {MAX_VALIDITY.days} days")
    return delta


# --- contents ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterBlock:
    """Invocation counters ``start`` .. ``limit - 1`` reserved for the key file; the server's last counter seen."""

    start: int
    limit: int
    last_received: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """What the probe needs to reach and authenticate one device (a meter, or a concentrator's management device).

    A meter behind a concentrator also carries its gateway address, so that it can be read
    through the concentrator's optical port. ``counters`` is None when the association is not
    ciphered (no invocation counters on the wire).
    """

    kind: Literal["meter", "concentrator"]
    ident: str
    client_sap: int
    security: MeterSecurity = field(repr=False)
    counters: CounterBlock | None = None
    server_sap: int = 1
    physical_address: int | None = None
    concentrator: str | None = None
    network_id: int = 0
    gateway_address: bytes | None = None
    meters: tuple[str, ...] = ()

    @property
    def counter_key(self) -> str:
        return f"{self.ident}/{self.client_sap}"


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _unhex(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyFileError(f"key file: {what} is not hex text")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(f"key file: {what} is not hex text") from None


def _device_json(device: DeviceKeys) -> dict[str, Any]:
    s = device.security
    block = device.counters
    return {
        "kind": device.kind, "id": device.ident, "client_sap": device.client_sap,
        "security": {"policy": s.policy, "password": _hex(s.password), "system_title": _hex(s.system_title),
                     "ek": _hex(s.ek), "ak": _hex(s.ak)},
        "counters": None if block is None else {"start": block.start, "limit": block.limit,
                                                 "last_received": block.last_received},
        "server_sap": device.server_sap, "physical_address": device.physical_address,
        "concentrator": device.concentrator, "network_id": device.network_id,
        "gateway_address": _hex(device.gateway_address), "meters": list(device.meters),
    }


def _device_from(data: Mapping[str, Any]) -> DeviceKeys:
    s = data["security"]
    block = data["counters"]
    kind = data["kind"]
    if kind not in ("meter", "concentrator") or s["policy"] not in ("none", "lls", "hls-gmac"):
        raise KeyFileError(f"key file: device {data.get('id')!r} has an unknown kind or security policy")
    return DeviceKeys(
        kind=kind, ident=str(data["id"]), client_sap=int(data["client_sap"]),
        security=MeterSecurity(cast(Policy, s["policy"]), _unhex(s["password"], "password"),
                               _unhex(s["system_title"], "system title"), _unhex(s["ek"], "EK"),
                               _unhex(s["ak"], "AK")),
        counters=None if block is None else CounterBlock(int(block["start"]), int(block["limit"]),
                                                          None if block["last_received"] is None
                                                          else int(block["last_received"])),
        server_sap=int(data["server_sap"]),
        physical_address=None if data["physical_address"] is None else int(data["physical_address"]),
        concentrator=data["concentrator"], network_id=int(data["network_id"]),
        gateway_address=_unhex(data["gateway_address"], "gateway address"),
        meters=tuple(str(m) for m in data["meters"]),
    )


@dataclass(frozen=True, slots=True)
class KeyFileContent:
    """Everything a key file holds. ``next_counters`` maps ``device/client SAP`` to the next free counter."""

    export_id: str
    created_at: datetime
    expires_at: datetime
    bundle_key: bytes = field(repr=False)
    client_system_title: bytes
    devices: tuple[DeviceKeys, ...]
    next_counters: Mapping[str, int] = field(default_factory=dict)
    last_received: Mapping[str, int] = field(default_factory=dict)

    def device(self, ident: str) -> DeviceKeys | None:
        return next((d for d in self.devices if d.ident == ident), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id, "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(), "bundle_key": self.bundle_key.hex(),
            "client_system_title": self.client_system_title.hex(),
            "devices": [_device_json(d) for d in self.devices],
            "next_counters": dict(self.next_counters), "last_received": dict(self.last_received),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyFileContent:
        try:
            return cls(
                export_id=str(data["export_id"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
                bundle_key=bytes.fromhex(data["bundle_key"]),
                client_system_title=bytes.fromhex(data["client_system_title"]),
                devices=tuple(_device_from(d) for d in data["devices"]),
                next_counters={str(k): int(v) for k, v in data["next_counters"].items()},
                last_received={str(k): int(v) for k, v in data["last_received"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyFileError(f"key file contents are malformed ({type(exc).__name__}: {exc})") from None


# --- the file --------------------------------------------------------------------------------------------


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from None


def _seal(header: dict[str, Any], key: bytes, content: KeyFileContent) -> bytes:
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, _canonical(content.to_json()), _canonical(header))
    document = {**header, "nonce": nonce.hex(), "ciphertext": base64.b64encode(ciphertext).decode("ascii")}
    return json.dumps(document, indent=1).encode() + b"\n"


def _header(content: KeyFileContent, salt: bytes, n: int, r: int, p: int) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "export_id": content.export_id,
        "created_at": content.created_at.isoformat(), "expires_at": content.expires_at.isoformat(),
        "kdf": {"name": "scrypt", "salt": salt.hex(), "n": n, "r": r, "p": p},
    }


def write_key_file(path: str | os.PathLike[str], content: KeyFileContent, passphrase: str) -> None:
    """Write ``content`` encrypted with ``passphrase`` (mode 600, atomically)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyFileError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    salt = os.urandom(16)
    key = _derive(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    _write_atomic(Path(path), _seal(_header(content, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P), key, content))


class KeyFile:
    """An opened key file: its contents, and the counter reservations the probe makes from it."""

    def __init__(self, path: Path, header: dict[str, Any], key: bytes, content: KeyFileContent) -> None:
        self.path = path
        self._header = header
        self._key = key
        self.content = content

    def __repr__(self) -> str:
        return f"KeyFile({self.path}, export {self.content.export_id})"

    def _save(self) -> None:
        _write_atomic(self.path, _seal(self._header, self._key, self.content))

    def reserve(self, device: DeviceKeys, count: int) -> CounterReservation:
        """``count`` counters of the device's block, written back to the file before they are used."""
        block = device.counters
        if block is None:
            # No ciphering, no invocation counters on the wire: nothing to keep track of.
            return CounterReservation(start=1, limit=2**32)
        key = device.counter_key
        start = max(self.content.next_counters.get(key, block.start), block.start)
        if start + count > block.limit:
            raise KeyFileError(
                f"the key file's invocation counters for {device.ident} are used up "
                f"({block.limit - start} left, {count} needed): export a new key file")
        self.content = replace(self.content, next_counters={**self.content.next_counters, key: start + count})
        self._save()
        last = self.content.last_received.get(key, block.last_received)
        return CounterReservation(start=start, limit=start + count, last_received=last)

    def record_received(self, device: DeviceKeys, counter: int | None) -> None:
        """Keep the device's last accepted counter (the replay floor of the next session)."""
        if counter is None or device.counters is None:
            return
        key = device.counter_key
        if counter <= self.content.last_received.get(key, -1):
            return
        self.content = replace(self.content, last_received={**self.content.last_received, key: counter})
        self._save()


def open_key_file(path: str | os.PathLike[str], passphrase: str, *,
                  now: Callable[[], datetime] = utcnow) -> KeyFile:
    """Open and check a key file: ``KeyFileError`` (one line) when unreadable, modified, wrong passphrase, expired."""
    target = Path(path)
    try:
        if target.stat().st_size > _MAX_FILE:
            raise KeyFileError(f"{target} is too large to be a key file")
        raw = target.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {target}: {exc.strerror or exc}") from None
    try:
        document = json.loads(raw)
        header = {k: document[k] for k in ("format", "version", "export_id", "created_at", "expires_at", "kdf")}
        kdf = header["kdf"]
        nonce, ciphertext = bytes.fromhex(document["nonce"]), base64.b64decode(document["ciphertext"], validate=True)
        salt, n, r, p = bytes.fromhex(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        expires = datetime.fromisoformat(header["expires_at"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KeyFileError(f"{target} is not a key file of the field tool") from None
    if header["format"] != FORMAT or header["version"] != VERSION or kdf.get("name") != "scrypt":
        raise KeyFileError(f"{target} is not a key file of the field tool (format {header['format']!r} "
                           f"version {header['version']!r})")
    if not (2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16) or len(nonce) != 12:
        raise KeyFileError(f"{target}: key file parameters are out of range (modified file?)")
    try:
        key = _derive(passphrase, salt, n, r, p)
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _canonical(header))
    except (InvalidTag, ValueError):
        raise KeyFileError(f"cannot open key file {target}: wrong passphrase, or the file was modified") from None
    try:
        content = KeyFileContent.from_json(json.loads(plaintext))
    except ValueError:
        raise KeyFileError(f"{target}: key file contents are malformed") from None
    if expires.utcoffset() is None or content.expires_at != expires:
        raise KeyFileError(f"{target}: key file header and contents disagree")
    moment = now()
    if moment >= expires:
        raise KeyFileError(f"key file {target} (export {content.export_id}) expired at "
                           f"{expires.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}: export a new one")
    return KeyFile(target, header, key, content)


# --- the export (head-end side) -----------------------------------------------------------------------


def _ciphered(security: MeterSecurity) -> bool:
    return security.policy == "hls-gmac"


def _counter_block(registry: Registry, device: str, client_sap: int, security: MeterSecurity,
                   count: int) -> CounterBlock | None:
    if not _ciphered(security):
        return None
    reservation = reserve_counters(registry.engine, device, client_sap, count)
    return CounterBlock(reservation.start, reservation.limit, reservation.last_received)


def _meter_keys(registry: Registry, target: MeterTarget, count: int) -> DeviceKeys:
    route = target.route
    block = _counter_block(registry, target.serial, target.client_sap, target.security, count)
    if isinstance(route, ViaConcentrator):
        return DeviceKeys("meter", target.serial, target.client_sap, target.security, block,
                          concentrator=route.concentrator_id, network_id=route.network_id,
                          gateway_address=route.physical_address)
    if not isinstance(route, DirectRoute):
        raise KeyFileError(f"{target.serial} is not a meter")
    # At the meter's optical port the management logical device answers; the physical address is the
    # meter's HDLC one when it has one (optical ports usually accept any).
    return DeviceKeys("meter", target.serial, target.client_sap, target.security, block,
                      server_sap=route.server_sap, physical_address=route.physical_address)


def export_key_file(
    registry: Registry,
    path: str | os.PathLike[str],
    passphrase: str,
    *,
    meters: Iterable[str] = (),
    concentrator: str | None = None,
    validity: timedelta = timedelta(days=7),
    counters: int = DEFAULT_COUNTER_BLOCK,
    who: str = "system",
) -> KeyFileContent:
    """Export the keys for ``meters`` (and ``concentrator`` with all its meters unless ``meters`` names some).

    Reserves ``counters`` invocation counters per ciphered (device, client SAP), records the export
    (with its bundle key, encrypted with the master key) and writes the key file.
    """
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyFileError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    if not timedelta(0) < validity <= MAX_VALIDITY:
        raise KeyFileError(f"a key file is valid for up to {MAX_VALIDITY.days} days")
    if not 0 < counters <= 10_000_000:
        raise KeyFileError(f"--counters {counters}: between 1 and 10000000 per device")
    serials = list(dict.fromkeys(s.strip() for s in meters if s.strip()))
    devices: list[DeviceKeys] = []
    if concentrator is not None:
        dc_meters = [m.serial for m in registry.list_meters(concentrator=concentrator)]
        info = registry.show_concentrator(concentrator)  # UnknownConcentrator when it is not registered
        if serials:
            strangers = [s for s in serials if s not in dc_meters]
            if strangers:
                raise KeyFileError(f"meters {', '.join(strangers)} are not linked to concentrator {concentrator}")
        else:
            serials = dc_meters
        if not serials:
            raise KeyFileError(f"concentrator {concentrator} has no meters to export")
        facts = registry.concentrator(info.id)
        dc = registry.management_target(facts)
        block = _counter_block(registry, info.id, dc.client_sap, dc.security, counters)
        devices.append(DeviceKeys("concentrator", info.id, dc.client_sap, dc.security, block,
                                  server_sap=facts.wport, network_id=facts.network_id, meters=tuple(serials)))
    if not serials:
        raise KeyFileError("name the meters (--meters) or a concentrator (--concentrator) to export keys for")
    targets = []
    for serial in serials:
        try:
            targets.append(registry.target_for(serial))
        except RegistryError as exc:
            raise KeyFileError(str(exc)) from None
    system_title = targets[0].client_system_title
    devices += [_meter_keys(registry, target, counters) for target in targets]
    now = utcnow().replace(microsecond=0)
    content = KeyFileContent(
        export_id=str(uuid.uuid4()), created_at=now, expires_at=now + validity, bundle_key=os.urandom(32),
        client_system_title=system_title, devices=tuple(devices),
    )
    reserved = {d.counter_key: [d.counters.start, d.counters.limit] for d in devices if d.counters is not None}
    with storage_errors(registry.engine), session_factory(registry.engine)() as session, session.begin():
        session.add(FieldKeyExport(
            export_id=content.export_id, created_at=now, expires_at=content.expires_at, created_by=who,
            devices=[d.ident for d in devices], counters=reserved,
            bundle_key_enc=registry.master_key.encrypt(content.bundle_key, bundle_key_aad(content.export_id)),
        ))
        record_audit(session, who, f"probe keys export {content.export_id} for {', '.join(d.ident for d in devices)}",
                     f"OK, expires {content.expires_at.isoformat()}", when=now)
    write_key_file(path, content, passphrase)
    return content
