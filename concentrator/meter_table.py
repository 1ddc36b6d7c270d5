"""A data concentrator's meter table: its rows as the DC sends them, and their reconciliation with the registry.

A DC keeps a table of the meters on its PLC/RF network (the meters that registered with it): serial,
network address, whether it reads them, when it last did. The table is a profile generic (IC 7) on
the DC's management logical device, its columns named by their capture objects: ``MeterTableLayout``
says which capture object holds what (the default is the simulated DC's manufacturer-specific
layout, ``docs/SIMULATORS.md``), and ``parse_meter_table`` turns the buffer into ``MeterTableEntry``
rows, raising ``DecodeError`` for a table that cannot be read (bytes from the field prove themselves).

``reconcile`` compares the table with what the registry links to the DC and says what to do: meters
the DC has and the registry lacks are *discovered* (recorded, not commissioned until their keys
are given); meters the registry links to the DC that the table no longer has are *missing*
(flagged once, cleared when they come back); a meter whose address or logical device changed is
*readdressed*; a meter registered elsewhere that now sits in this DC's table is *relinked*.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocols.axdr import Data, DataTag
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, DlmsError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition

__all__ = [
    "DEFAULT_LAYOUT",
    "METER_TABLE",
    "MeterTableEntry",
    "MeterTableLayout",
    "Reconciliation",
    "RegisteredMeter",
    "Relink",
    "parse_meter_table",
    "reconcile",
]

#: The meter table of the simulated DC: IC 7 in the manufacturer-specific range (group B = 128).
METER_TABLE = ObisCode(0, 128, 99, 1, 0, 255)


def _column_obis(d: int) -> ObisCode:
    return ObisCode(0, 128, 96, d, 0, 255)


# The simulated DC's columns: IC 1 objects in the manufacturer-specific range (attribute 2 each).
_SERIAL, _ADDRESS, _COMMISSIONED, _LAST_READ, _REACHABLE, _LOGICAL_DEVICE, _IDENTIFICATION = (
    _column_obis(d) for d in range(1, 8))


@dataclass(frozen=True, slots=True)
class MeterTableLayout:
    """Which capture object (by logical name) holds each field; only serial and address are required,
    the others are read when the DC has them."""

    table: ObisCode = METER_TABLE
    serial: ObisCode = _SERIAL
    physical_address: ObisCode = _ADDRESS
    commissioned: ObisCode | None = _COMMISSIONED
    last_read: ObisCode | None = _LAST_READ
    reachable: ObisCode | None = _REACHABLE
    logical_device: ObisCode | None = _LOGICAL_DEVICE
    identification: ObisCode | None = _IDENTIFICATION


DEFAULT_LAYOUT = MeterTableLayout()


@dataclass(frozen=True, slots=True)
class MeterTableEntry:
    """One meter as the DC lists it. ``physical_address`` as the gateway carries it; ``last_read`` UTC."""

    serial: str
    physical_address: bytes
    logical_device: int | None = None
    commissioned: bool | None = None
    last_read: datetime | None = None
    reachable: bool | None = None
    identification: str | None = None


def _column(definitions: Sequence[CaptureObjectDefinition], obis: ObisCode | None) -> int | None:
    if obis is None:
        return None
    for index, definition in enumerate(definitions):
        if definition.logical_name == obis:
            return index
    return None


def _text(value: Data, what: str) -> str:
    if value.tag in (DataTag.VISIBLE_STRING, DataTag.UTF8_STRING) and isinstance(value.value, str):
        return value.value
    if value.tag == DataTag.OCTET_STRING and isinstance(value.value, bytes | bytearray):
        try:
            return bytes(value.value).decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(f"{what} is not printable text") from None
    raise DecodeError(f"{what}: expected a string, got {DataTag(value.tag).name.lower()}")


def _flag(value: Data) -> bool | None:
    return bool(value.value) if value.tag == DataTag.BOOLEAN else None


def _moment(value: Data) -> datetime | None:
    raw = value.value
    if value.tag == DataTag.DATE_TIME and isinstance(raw, CosemDateTime):
        stamp: CosemDateTime | None = raw
    elif value.tag == DataTag.OCTET_STRING and isinstance(raw, bytes | bytearray) and len(raw) == 12:
        stamp = None
        with contextlib.suppress(DlmsError):
            stamp = CosemDateTime.decode(bytes(raw))
    else:
        return None
    moment = None if stamp is None else stamp.to_datetime()
    return None if moment is None else moment.astimezone(UTC)


def parse_meter_table(definitions: Sequence[CaptureObjectDefinition], buffer: Data,
                      layout: MeterTableLayout = DEFAULT_LAYOUT) -> list[MeterTableEntry]:
    """The table's rows (``buffer``: attribute 2) given its columns (attribute 3); ``DecodeError`` if unreadable."""
    serial_at = _column(definitions, layout.serial)
    address_at = _column(definitions, layout.physical_address)
    if serial_at is None or address_at is None:
        missing = layout.serial if serial_at is None else layout.physical_address
        raise DecodeError(f"meter table {layout.table}: no column {missing} (serial and address are needed)")
    optional = {name: _column(definitions, getattr(layout, name))
                for name in ("commissioned", "last_read", "reachable", "logical_device", "identification")}
    if buffer.tag != DataTag.ARRAY:
        raise DecodeError(f"meter table {layout.table}: the buffer is not an array")
    entries: list[MeterTableEntry] = []
    for number, row in enumerate(buffer.value):
        where = f"meter table {layout.table} row {number + 1}"
        if row.tag != DataTag.STRUCTURE or len(row.value) != len(definitions):
            raise DecodeError(f"{where}: expected a structure of {len(definitions)} columns")
        cells: Sequence[Data] = row.value
        serial = _text(cells[serial_at], f"{where} serial").strip()
        if not serial or not serial.isprintable() or len(serial) > 64:
            raise DecodeError(f"{where}: serial {serial!r} is not 1 to 64 printable characters")
        address = cells[address_at]
        if address.tag != DataTag.OCTET_STRING or not 1 <= len(address.value) <= 16:
            raise DecodeError(f"{where}: physical address is not an octet-string of 1 to 16 bytes")
        logical_device: int | None = None
        if optional["logical_device"] is not None:
            value = cells[optional["logical_device"]]
            if isinstance(value.value, int) and not isinstance(value.value, bool) and 0 <= value.value <= 0xFFFF:
                logical_device = value.value
        identification: str | None = None
        if optional["identification"] is not None:
            with contextlib.suppress(DecodeError):
                identification = _text(cells[optional["identification"]], f"{where} identification").strip() or None
        entries.append(MeterTableEntry(
            serial=serial,
            physical_address=bytes(address.value),
            logical_device=logical_device,
            commissioned=None if optional["commissioned"] is None else _flag(cells[optional["commissioned"]]),
            last_read=None if optional["last_read"] is None else _moment(cells[optional["last_read"]]),
            reachable=None if optional["reachable"] is None else _flag(cells[optional["reachable"]]),
            identification=identification,
        ))
    return entries


# --- reconciliation ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisteredMeter:
    """What the registry knows of a meter that concerns a DC's table."""

    serial: str
    state: str  # discovered, commissioned, decommissioned, ...
    concentrator_id: str | None
    logical_device: int | None
    physical_address: bytes | None
    #: The registry flagged it missing from its DC's table (since then).
    missing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Relink:
    """A registered meter whose link to this DC is to be set as the table says."""

    serial: str
    entry: MeterTableEntry
    #: Where it was: ``DC0002``, ``direct``, or this DC with another address.
    before: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What one DC's table means for the registry (every list in table order, then serial order)."""

    concentrator_id: str
    discovered: tuple[MeterTableEntry, ...] = ()
    readdressed: tuple[Relink, ...] = ()
    relinked: tuple[Relink, ...] = ()
    missing: tuple[RegisteredMeter, ...] = ()
    still_missing: tuple[RegisteredMeter, ...] = ()
    returned: tuple[RegisteredMeter, ...] = ()
    unchanged: int = 0
    #: Table rows not acted on, with why (a decommissioned meter, a serial or address listed twice).
    ignored: tuple[tuple[str, str], ...] = field(default=())

    @property
    def changes(self) -> int:
        return (len(self.discovered) + len(self.readdressed) + len(self.relinked) + len(self.missing)
                + len(self.returned))

    def summary(self) -> str:
        """One line per DC, for the operator."""
        parts = [f"{len(self.discovered)} discovered", f"{len(self.missing)} missing",
                 f"{len(self.readdressed)} readdressed", f"{len(self.relinked)} relinked",
                 f"{len(self.returned)} back", f"{self.unchanged} unchanged"]
        if self.still_missing:
            parts.append(f"{len(self.still_missing)} still missing")
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored")
        return f"concentrator {self.concentrator_id}: " + ", ".join(parts)


def _place(meter: RegisteredMeter) -> str:
    if meter.concentrator_id is None:
        return "direct"
    address = "-" if meter.physical_address is None else meter.physical_address.hex()
    return f"{meter.concentrator_id} LD {meter.logical_device} addr {address}"


def reconcile(concentrator_id: str, entries: Iterable[MeterTableEntry],
              registered: Iterable[RegisteredMeter]) -> Reconciliation:
    """Compare DC ``concentrator_id``'s table with the registry (``registered``: every meter the registry has
    that is linked to this DC, and every other meter whose serial appears in the table)."""
    known = {meter.serial: meter for meter in registered}
    discovered: list[MeterTableEntry] = []
    readdressed: list[Relink] = []
    relinked: list[Relink] = []
    returned: list[RegisteredMeter] = []
    ignored: list[tuple[str, str]] = []
    unchanged = 0
    seen: set[str] = set()
    addresses: dict[bytes, str] = {}
    for entry in entries:
        if entry.serial in seen:
            ignored.append((entry.serial, "listed twice in the table"))
            continue
        other = addresses.get(entry.physical_address)
        if other is not None:
            ignored.append((entry.serial, f"address {entry.physical_address.hex()} is also {other}'s in the table"))
            continue
        seen.add(entry.serial)
        addresses[entry.physical_address] = entry.serial
        meter = known.get(entry.serial)
        if meter is None:
            discovered.append(entry)
            continue
        if meter.state == "decommissioned":
            ignored.append((entry.serial, "decommissioned in the registry"))
            continue
        if meter.missing_since is not None:
            returned.append(meter)  # its flag is cleared, whatever else changed
        if meter.concentrator_id != concentrator_id:
            relinked.append(Relink(entry.serial, entry, _place(meter)))
        elif meter.physical_address != entry.physical_address or (
                entry.logical_device is not None and meter.logical_device != entry.logical_device):
            readdressed.append(Relink(entry.serial, entry, _place(meter)))
        elif meter.missing_since is None:
            unchanged += 1
    missing: list[RegisteredMeter] = []
    still_missing: list[RegisteredMeter] = []
    for meter in sorted(known.values(), key=lambda m: m.serial):
        if meter.concentrator_id != concentrator_id or meter.serial in seen or meter.state == "decommissioned":
            continue
        (still_missing if meter.missing_since is not None else missing).append(meter)
    return Reconciliation(concentrator_id, tuple(discovered), tuple(readdressed), tuple(relinked), tuple(missing),
                          tuple(still_missing), tuple(returned), unchanged, tuple(ignored))
