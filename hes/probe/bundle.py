"""The bundle a field read produces: the data read, where from, when, by which tool, authenticated with HMAC-SHA256.

A bundle is one JSON file::

    {"format": "hes-probe-bundle", "version": 1, "mac": "<hex>", "bundle": {...}}

``bundle`` (the payload) records the bundle id, the key file export it was made with, the tool
(name, version, host, operator), the port and the device's identification, what was asked
(``what``, range, meters), when the read started and finished, whether it is partial and why, and
per meter the rows read (the same rows ``hes.reads`` builds for a remote read: interval values,
register and daily readings, events), observations and failures; for a concentrator also its
clock, meter table and event log.

``mac`` is HMAC-SHA256, under the export's bundle key, of the payload in canonical JSON (keys
sorted, no spaces, ASCII). The field device has the bundle key from its key file; the head-end
has it encrypted with its master key (``hes.probe.keys``). Any changed value changes the MAC, so
``hes import`` refuses a modified bundle. A MAC proves who made the bundle, not that the device
answered truthfully: the readings themselves are protected on the optical link by the meter's own
security (HLS-GMAC and ciphering when the meter uses them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hes.errors import HesError

__all__ = [
    "FORMAT",
    "MAX_BUNDLE_BYTES",
    "VERSION",
    "BundleError",
    "LoadedBundle",
    "bundle_mac",
    "encode_bundle",
    "load_bundle",
    "write_bundle",
]

FORMAT = "hes-probe-bundle"
VERSION = 1
#: A year of 15-minute profile for a few hundred meters is far below this; anything larger is not a bundle.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


class BundleError(HesError):
    """A file that is not a usable bundle: unreadable, not a bundle, modified, or made with an unknown key file."""


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def bundle_mac(payload: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the payload's canonical JSON, hex."""
    return hmac.new(key, _canonical(payload), hashlib.sha256).hexdigest()


def encode_bundle(payload: Mapping[str, Any], key: bytes) -> bytes:
    """The bundle file's bytes."""
    document = {"format": FORMAT, "version": VERSION, "mac": bundle_mac(payload, key), "bundle": payload}
    return json.dumps(document, indent=1, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"


def write_bundle(path: str | os.PathLike[str], payload: Mapping[str, Any], key: bytes) -> str:
    """Write the bundle atomically (a half-written file never has the final name); returns its SHA-256."""
    target = Path(path)
    data = encode_bundle(payload, key)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise BundleError(f"cannot write bundle {target}: {exc.strerror or exc}") from None
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedBundle:
    """A bundle file as read, not yet verified (``verify`` needs the export's bundle key)."""

    path: Path
    payload: Mapping[str, Any]
    mac: str
    sha256: str

    @property
    def bundle_id(self) -> str:
        return str(self.payload["bundle_id"])

    @property
    def export_id(self) -> str:
        return str(self.payload["export_id"])

    def verify(self, key: bytes) -> None:
        """``BundleError`` unless the MAC matches: the bundle was changed after the field device wrote it."""
        if not hmac.compare_digest(bundle_mac(self.payload, key), self.mac):
            raise BundleError(f"bundle {self.path} was modified after it was written (its MAC does not match): "
                              "refused, nothing stored")


def load_bundle(path: str | os.PathLike[str]) -> LoadedBundle:
    """Read a bundle file (``BundleError`` with one line when it cannot be one)."""
    target = Path(path)
    try:
        if target.stat().st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"{target} is larger than {MAX_BUNDLE_BYTES // 2**20} MiB: not a bundle")
        raw = target.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read bundle {target}: {exc.strerror or exc}") from None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise BundleError(f"{target} is not a bundle (not JSON: damaged or modified): refused, "
                          "nothing stored") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{target} is not a bundle of the field tool")
    if document.get("version") != VERSION:
        raise BundleError(f"{target}: bundle version {document.get('version')!r} is not supported (expected {VERSION})")
    payload, mac = document.get("bundle"), document.get("mac")
    if not isinstance(payload, dict) or not isinstance(mac, str) or not isinstance(payload.get("bundle_id"), str) \
            or not isinstance(payload.get("export_id"), str):
        raise BundleError(f"{target}: bundle without payload, MAC, bundle id or export id")
    return LoadedBundle(target, payload, mac, hashlib.sha256(raw).hexdigest())
