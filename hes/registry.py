"""The registry of assets: concentrators and meters, their links and keys, and the ``MeterTarget`` sessions use.

Secrets are encrypted with the master key as they enter (``hes.keys``) and decrypted only in
``target_for``; ``MeterInfo`` and ``ConcentratorInfo``, what listings and the CLI show, say
whether a secret is set, never what it is. Importing a fleet manifest is idempotent: a device
already known is updated (address, keys), never duplicated, and a decommissioned meter stays so.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from concentrator.clock import DEFAULT_POLICY, ClockPolicy
from concentrator.links import DEFAULT_DEADLINES, Deadlines, Medium, ReadMode
from concentrator.reachability import Contact
from hes.config import Settings
from hes.db.concentrators import record_contacts
from hes.db.devices import ConcentratorFacts, MeterFacts, concentrator_facts, meter_facts
from hes.db.engine import create_engine_for, session_factory, storage_errors
from hes.db.migrate import upgrade
from hes.db.models import POLICIES, AssetEvent, Concentrator, DeviceTypeRow, Meter, utcnow
from hes.db.orders import record_asset_event, record_audit
from hes.devicetypes import (
    Catalogue,
    DeviceType,
    DeviceTypeError,
    cached_catalogue,
    catalogue,
    forget_catalogue,
    read_device_type,
    shipped_types,
)
from hes.errors import HesError
from hes.keys import MasterKey, load_master_key, secret_aad
from hes.model import (
    DirectRoute,
    Interface,
    ManagementRoute,
    MeterSecurity,
    MeterTarget,
    Policy,
    Route,
    ViaConcentrator,
)
from hes.registry_file import RegistryFileError, read_registry_file

__all__ = [
    "ConcentratorInfo",
    "ImportSummary",
    "MeterInfo",
    "Registry",
    "RegistryError",
    "UnknownConcentrator",
    "UnknownMeter",
]


logger = logging.getLogger(__name__)


class RegistryError(HesError):
    """A registry request that cannot be done as asked (bad value, unknown device, bad manifest)."""


class UnknownMeter(RegistryError):
    def __init__(self, serial: str) -> None:
        super().__init__(f"no meter {serial!r} in the registry")
        self.serial = serial


class UnknownConcentrator(RegistryError):
    def __init__(self, ident: str) -> None:
        super().__init__(f"no concentrator {ident!r} in the registry")
        self.ident = ident


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What may be shown about a meter: everything but its secrets (only whether they are set)."""

    id: int
    serial: str
    state: str
    make: str | None
    model: str | None
    firmware: str | None
    device_type: str | None
    missing_since: datetime | None
    commissioning_date: date | None
    service_life_years: int | None
    decommissioning_date: date | None
    warranty_until: date | None
    concentrator_id: str | None
    logical_device: int | None
    physical_address: str | None  # hex (gateway) for a DC meter, decimal HDLC address for a direct one
    host: str | None
    port: int | None
    interface: str | None
    client_sap: int
    server_sap: int | None
    security_policy: str
    system_title: str | None
    has_password: bool
    has_keys: bool

    @property
    def link(self) -> str:
        if self.concentrator_id is not None:
            return f"{self.concentrator_id} LD {self.logical_device} addr {self.physical_address}"
        return f"{self.interface} {self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        def day(value: date | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "serial": self.serial, "state": self.state, "make": self.make, "model": self.model,
            "firmware": self.firmware, "device_type": self.device_type,
            "missing_from_concentrator_since": None if self.missing_since is None else self.missing_since.isoformat(),
            "commissioning_date": day(self.commissioning_date), "service_life_years": self.service_life_years,
            "decommissioning_date": day(self.decommissioning_date), "warranty_until": day(self.warranty_until),
            "concentrator": self.concentrator_id, "logical_device": self.logical_device,
            "physical_address": self.physical_address, "host": self.host, "port": self.port,
            "interface": self.interface, "client_sap": self.client_sap, "server_sap": self.server_sap,
            "security": self.security_policy, "system_title": self.system_title,
            "has_password": self.has_password, "has_keys": self.has_keys,
        }


@dataclass(frozen=True, slots=True)
class ConcentratorInfo:
    id: str
    host: str
    port: int
    wport: int
    client_sap: int
    network_id: int
    security_policy: str
    system_title: str | None
    has_keys: bool
    last_contact: datetime | None
    reachable: bool | None
    meters: int
    medium: str = "plc"
    response_deadline: float | None = None
    max_sessions: int | None = None
    last_attempt: datetime | None = None
    unreachable_since: datetime | None = None
    clock_checked_at: datetime | None = None
    #: The DC's clock minus the head-end's at that reading, seconds.
    clock_deviation: float | None = None
    table_synced_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "id": self.id, "host": self.host, "port": self.port, "wport": self.wport, "client_sap": self.client_sap,
            "network_id": self.network_id, "security": self.security_policy, "system_title": self.system_title,
            "has_keys": self.has_keys, "last_contact": iso(self.last_contact), "reachable": self.reachable,
            "meters": self.meters, "medium": self.medium, "response_deadline_s": self.response_deadline,
            "max_sessions": self.max_sessions, "last_attempt": iso(self.last_attempt),
            "unreachable_since": iso(self.unreachable_since), "clock_checked_at": iso(self.clock_checked_at),
            "clock_deviation_s": self.clock_deviation, "table_synced_at": iso(self.table_synced_at),
        }


@dataclass(frozen=True, slots=True)
class ImportSummary:
    concentrators_added: int = 0
    concentrators_updated: int = 0
    meters_added: int = 0
    meters_updated: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "concentrators_added": self.concentrators_added, "concentrators_updated": self.concentrators_updated,
            "meters_added": self.meters_added, "meters_updated": self.meters_updated,
        }


def _check_security(security: MeterSecurity, what: str) -> None:
    if security.policy not in POLICIES:
        raise RegistryError(f"{what}: security must be one of {', '.join(POLICIES)}, not {security.policy!r}")
    if security.policy == "lls" and not security.password:
        raise RegistryError(f"{what}: LLS needs a password")
    if security.policy == "hls-gmac":
        if security.system_title is None or len(security.system_title) != 8:
            raise RegistryError(f"{what}: HLS-GMAC needs the meter's 8-byte system title")
        for name, key in (("EK", security.ek), ("AK", security.ak)):
            if key is None or len(key) != 16:
                raise RegistryError(f"{what}: HLS-GMAC with suite 0 needs a 16-byte {name}")


class Registry:
    """Concentrators and meters in the HES database, keys encrypted with ``master_key``."""

    def __init__(self, engine: Engine, master_key: MasterKey, *, clock: Callable[[], datetime] = utcnow,
                 deadlines: Deadlines = DEFAULT_DEADLINES, dc_clock: ClockPolicy = DEFAULT_POLICY) -> None:
        self.engine = engine
        self.master_key = master_key
        #: The response deadlines by link the head-end was configured with (``HES_DEADLINE_*``).
        self.deadlines = deadlines
        #: How closely DC clocks are watched (``HES_CONCENTRATOR_CLOCK_*``).
        self.dc_clock = dc_clock
        self._sessions = session_factory(engine)
        self._clock = clock
        self._dc_securities: dict[tuple[str, datetime | None], MeterSecurity] = {}

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Registry:
        """The registry of the configured database (migrated to the latest schema unless ``migrate`` is false)."""
        key = load_master_key(settings.master_key_file)
        engine = create_engine_for(settings.database_url)
        if migrate:
            upgrade(engine)
        return cls(engine, key, deadlines=settings.deadlines, dc_clock=settings.dc_clock)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with storage_errors(self.engine), self._sessions() as session, session.begin():
            yield session

    # --- secrets ---------------------------------------------------------------------------------------

    def _seal(self, row: Meter | Concentrator, kind: str, ident: str, security: MeterSecurity) -> None:
        key = self.master_key
        row.security_policy = security.policy
        row.system_title = security.system_title
        row.password_enc = key.encrypt_optional(security.password, secret_aad(kind, ident, "password"))
        row.ek_enc = key.encrypt_optional(security.ek, secret_aad(kind, ident, "ek"))
        row.ak_enc = key.encrypt_optional(security.ak, secret_aad(kind, ident, "ak"))

    # --- import ----------------------------------------------------------------------------------------

    def import_manifest(self, path: str | os.PathLike[str], *, who: str = "system") -> ImportSummary:
        """Register the concentrators and meters of a registry file (``hes.registry_file``), idempotently.

        A device already known is updated (address, link, keys, device type), never duplicated; a
        decommissioned meter stays so; a discovered meter (found in a DC's table) is commissioned
        now that its keys are given. One transaction: a file with one bad device imports nothing.
        """
        try:
            content = read_registry_file(path)
        except RegistryFileError as exc:
            raise RegistryError(str(exc)) from None
        counts = {"ca": 0, "cu": 0, "ma": 0, "mu": 0}
        now = self._clock()
        source = os.fspath(path)
        with self._session() as session:
            known = {c.id: c for c in session.scalars(select(Concentrator).where(
                Concentrator.id.in_([dc.id for dc in content.concentrators])))} if content.concentrators else {}
            for dc in content.concentrators:
                _check_security(dc.security, f"concentrator {dc.id}")
                row = known.get(dc.id)
                counts["cu" if row is not None else "ca"] += 1
                if row is None:
                    row = known[dc.id] = Concentrator(id=dc.id, created_at=now)
                    session.add(row)
                row.host, row.port, row.wport = dc.host, dc.port, dc.wport
                row.client_sap, row.network_id, row.updated_at = dc.client_sap, dc.network_id, now
                row.medium, row.response_deadline_s, row.max_sessions = dc.medium, dc.response_deadline, dc.max_sessions
                self._seal(row, "concentrator", dc.id, dc.security)
            session.flush()
            serials = [m.serial for m in content.meters]
            meters: dict[str, Meter] = {}
            for start in range(0, len(serials), 500):
                meters.update((m.serial, m) for m in session.scalars(select(Meter).where(
                    Meter.serial.in_(serials[start:start + 500]))))
            wanted_dcs = {m.concentrator for m in content.meters if m.concentrator is not None} - set(known)
            if wanted_dcs:
                known.update((c.id, c) for c in session.scalars(select(Concentrator).where(
                    Concentrator.id.in_(sorted(wanted_dcs)))))
            new_meters: list[Meter] = []
            commissioned: list[Meter] = []
            for entry in content.meters:
                _check_security(entry.security, f"meter {entry.serial}")
                if entry.concentrator is not None and entry.concentrator not in known:
                    raise RegistryError(f"registry file {source}: meter {entry.serial}: concentrator "
                                        f"{entry.concentrator} is neither in the file nor registered")
                meter = meters.get(entry.serial)
                if meter is None:
                    meter = meters[entry.serial] = self._new_meter(entry.serial, now)
                    new_meters.append(meter)
                    session.add(meter)
                    counts["ma"] += 1
                else:
                    counts["mu"] += 1
                    if meter.state == "discovered":
                        meter.state, meter.commissioning_date = "commissioned", now.date()
                        commissioned.append(meter)
                if entry.concentrator is not None and entry.physical_address is not None:
                    logical_device = entry.logical_device if entry.logical_device is not None else meter.logical_device
                    if logical_device is None:
                        raise RegistryError(f"registry file {source}: meter {entry.serial}: logical_device is missing "
                                            f"(its concentrated logical device in {entry.concentrator})")
                    self._link_dc(meter, entry.concentrator, logical_device, entry.physical_address,
                                  entry.client_sap)
                    meter.missing_since = None
                else:
                    self._link_direct(meter, entry.host or "", entry.port or 0, entry.interface, entry.client_sap,
                                      entry.server_sap, entry.hdlc_address)
                for name in ("device_type", "make", "model", "firmware"):
                    value = getattr(entry, name)
                    if value is not None:
                        setattr(meter, name, value)
                meter.updated_at = now
                self._seal(meter, "meter", entry.serial, entry.security)
            session.flush()
            for meter in new_meters:
                record_asset_event(session, meter.id, "installed", f"imported from {source}", when=now)
            for meter in commissioned:
                record_asset_event(session, meter.id, "commissioned", f"keys imported from {source}", when=now)
            summary = ImportSummary(counts["ca"], counts["cu"], counts["ma"], counts["mu"])
            record_audit(session, who, f"registry import {source}", f"OK {summary.to_json()}", when=now)
        return summary

    def _new_meter(self, serial: str, now: datetime) -> Meter:
        # Registered devices are in service: the use case reads a meter only once it is commissioned,
        # and the field it comes from (a manifest, an installer) says it is there and answering.
        return Meter(serial=serial, state="commissioned", commissioning_date=now.date(), created_at=now)

    @staticmethod
    def _link_dc(meter: Meter, dc: str, logical_device: int, physical: bytes, client_sap: int) -> None:
        meter.concentrator_id, meter.logical_device, meter.dc_physical_address = dc, logical_device, physical
        meter.host = meter.port = meter.interface = meter.server_sap = meter.hdlc_physical_address = None
        meter.serial_device = None
        meter.client_sap = client_sap

    @staticmethod
    def _link_direct(meter: Meter, host: str, port: int, interface: Interface, client_sap: int, server_sap: int,
                     physical: int | None, serial_device: str | None = None) -> None:
        meter.concentrator_id = meter.logical_device = meter.dc_physical_address = None
        meter.host, meter.port, meter.interface = host, port, interface
        meter.client_sap, meter.server_sap, meter.hdlc_physical_address = client_sap, server_sap, physical
        meter.serial_device = serial_device

    # --- meters ----------------------------------------------------------------------------------------

    def add_meter(
        self,
        serial: str,
        *,
        host: str,
        port: int,
        interface: Interface = "wrapper",
        client_sap: int = 1,
        server_sap: int = 1,
        physical_address: int | None = None,
        security: MeterSecurity | None = None,
        make: str | None = None,
        model: str | None = None,
        service_life_years: int | None = None,
        warranty_until: date | None = None,
        who: str = "system",
    ) -> MeterInfo:
        """Register a point-to-point meter (``RegistryError`` if the serial is taken or a value is bad)."""
        security = security or MeterSecurity()
        serial = serial.strip()
        if not serial or len(serial) > 64:
            raise RegistryError("a serial number is 1 to 64 characters")
        if not host:
            raise RegistryError("a point-to-point meter needs --host")
        if not 0 < port < 65536:
            raise RegistryError(f"port {port} is not between 1 and 65535")
        if interface not in ("wrapper", "hdlc"):
            raise RegistryError(f"interface must be wrapper or hdlc, not {interface!r}")
        for name, value in (("client SAP", client_sap), ("server SAP", server_sap)):
            if not 0 <= value <= 0x3FFF:
                raise RegistryError(f"{name} {value} is out of range (0..16383)")
        if physical_address is not None and not 0 <= physical_address <= 0x3FFF:
            raise RegistryError(f"physical address {physical_address} is out of range (0..16383)")
        if service_life_years is not None and not 0 < service_life_years < 100:
            raise RegistryError(f"service life {service_life_years} years is not plausible")
        _check_security(security, f"meter {serial}")
        now = self._clock()
        with self._session() as session:
            if session.scalar(select(Meter.id).where(Meter.serial == serial)) is not None:
                raise RegistryError(f"meter {serial!r} is already registered")
            meter = self._new_meter(serial, now)
            meter.make, meter.model = make, model
            meter.service_life_years, meter.warranty_until = service_life_years, warranty_until
            self._link_direct(meter, host, port, interface, client_sap, server_sap, physical_address)
            self._seal(meter, "meter", serial, security)
            meter.updated_at = now
            session.add(meter)
            session.flush()
            record_asset_event(session, meter.id, "installed", "added as a point-to-point meter", when=now)
            record_audit(session, who, f"meter add {serial} {interface} {host}:{port} {security.policy}", "OK",
                         when=now)
            return self._meter_info(meter)

    def _meter_info(self, meter: Meter) -> MeterInfo:
        if meter.concentrator_id is not None:
            physical = None if meter.dc_physical_address is None else meter.dc_physical_address.hex()
        else:
            physical = None if meter.hdlc_physical_address is None else str(meter.hdlc_physical_address)
        return MeterInfo(
            id=meter.id, serial=meter.serial, state=meter.state, make=meter.make, model=meter.model,
            firmware=meter.firmware, device_type=meter.device_type, missing_since=meter.missing_since,
            commissioning_date=meter.commissioning_date, service_life_years=meter.service_life_years,
            decommissioning_date=meter.decommissioning_date, warranty_until=meter.warranty_until,
            concentrator_id=meter.concentrator_id, logical_device=meter.logical_device, physical_address=physical,
            host=meter.host, port=meter.port, interface=meter.interface, client_sap=meter.client_sap,
            server_sap=meter.server_sap, security_policy=meter.security_policy,
            system_title=None if meter.system_title is None else meter.system_title.hex(),
            has_password=meter.password_enc is not None,
            has_keys=meter.ek_enc is not None and meter.ak_enc is not None,
        )

    def list_meters(
        self, *, concentrator: str | None = None, state: str | None = None
    ) -> list[MeterInfo]:
        query = select(Meter).order_by(Meter.serial)
        if concentrator is not None:
            query = query.where(Meter.concentrator_id == concentrator)
        if state is not None:
            query = query.where(Meter.state == state)
        with self._session() as session:
            return [self._meter_info(m) for m in session.scalars(query)]

    def _meter(self, session: Session, serial: str) -> Meter:
        meter = session.scalar(select(Meter).where(Meter.serial == serial))
        if meter is None:
            raise UnknownMeter(serial)
        return meter

    def show_meter(self, serial: str) -> MeterInfo:
        with self._session() as session:
            return self._meter_info(self._meter(session, serial))

    def meter_id(self, serial: str) -> int:
        """The database id readings are stored under."""
        return self.show_meter(serial).id

    def decommission(self, serial: str, *, when: date | None = None, who: str = "system") -> MeterInfo:
        """Take a meter out of service (no more reads or commands); its data and history stay."""
        now = self._clock()
        with self._session() as session:
            meter = self._meter(session, serial)
            if meter.state == "decommissioned":
                raise RegistryError(f"meter {serial!r} is already decommissioned (on {meter.decommissioning_date})")
            meter.state = "decommissioned"
            meter.decommissioning_date = when or now.date()
            meter.updated_at = now
            record_asset_event(session, meter.id, "decommissioned", None, when=now)
            record_audit(session, who, f"meter decommission {serial}", "OK", when=now)
            return self._meter_info(meter)

    def commission(self, serial: str, security: MeterSecurity, *, client_sap: int | None = None,
                   device_type: str | None = None, who: str = "system") -> MeterInfo:
        """Put a meter found in a DC's table (``discovered``) or registered without keys (``installed``) in service,
        with its security: it is read from now on."""
        _check_security(security, f"meter {serial}")
        if client_sap is not None and not 0 <= client_sap <= 0x3FFF:
            raise RegistryError(f"client SAP {client_sap} is out of range (0..16383)")
        if device_type is not None and self.device_types().get(device_type) is None:
            raise RegistryError(f"device type {device_type!r} is not known: hes devicetype add FILE")
        now = self._clock()
        with self._session() as session:
            meter = self._meter(session, serial)
            if meter.state not in ("discovered", "installed"):
                raise RegistryError(f"meter {serial!r} is {meter.state}: only a discovered or installed meter is "
                                    "commissioned")
            meter.state, meter.commissioning_date, meter.updated_at = "commissioned", now.date(), now
            if device_type is not None:
                meter.device_type = device_type
            if client_sap is None:
                # The client SAP its type's meters expect, when the type says (a discovered meter has the default).
                kind = self.device_types().for_meter(meter.device_type, meter.make, meter.model, meter.firmware)
                client_sap = kind.client_sap
            if client_sap is not None:
                meter.client_sap = client_sap
            self._seal(meter, "meter", serial, security)
            record_asset_event(session, meter.id, "commissioned", f"security {security.policy}", when=now)
            record_audit(session, who, f"meter commission {serial} {security.policy}", "OK", when=now)
            return self._meter_info(meter)

    def lifecycle(self, serial: str) -> list[tuple[datetime, str, str | None]]:
        """The meter's lifecycle events, oldest first: (when, kind, detail)."""
        with self._session() as session:
            meter = self._meter(session, serial)
            rows = session.execute(
                select(AssetEvent.at, AssetEvent.kind, AssetEvent.detail)
                .where(AssetEvent.meter_id == meter.id)
                .order_by(AssetEvent.at, AssetEvent.id)
            )
            return [(at, kind, detail) for at, kind, detail in rows]

    # --- concentrators ---------------------------------------------------------------------------------

    def _concentrator_info(self, row: Concentrator, meters: int) -> ConcentratorInfo:
        return ConcentratorInfo(
            id=row.id, host=row.host, port=row.port, wport=row.wport, client_sap=row.client_sap,
            network_id=row.network_id, security_policy=row.security_policy,
            system_title=None if row.system_title is None else row.system_title.hex(),
            has_keys=row.ek_enc is not None and row.ak_enc is not None,
            last_contact=row.last_contact, reachable=row.reachable, meters=meters, medium=row.medium,
            response_deadline=row.response_deadline_s, max_sessions=row.max_sessions, last_attempt=row.last_attempt,
            unreachable_since=row.unreachable_since, clock_checked_at=row.clock_checked_at,
            clock_deviation=row.clock_deviation_s, table_synced_at=row.table_synced_at,
        )

    def list_concentrators(self) -> list[ConcentratorInfo]:
        with self._session() as session:
            grouped = session.execute(select(Meter.concentrator_id, func.count()).group_by(Meter.concentrator_id))
            counts = {ident: int(count) for ident, count in grouped}
            return [
                self._concentrator_info(row, counts.get(row.id, 0))
                for row in session.scalars(select(Concentrator).order_by(Concentrator.id))
            ]

    def show_concentrator(self, ident: str) -> ConcentratorInfo:
        with self._session() as session:
            row = session.get(Concentrator, ident)
            if row is None:
                raise UnknownConcentrator(ident)
            count = session.scalar(select(func.count()).where(Meter.concentrator_id == ident)) or 0
            return self._concentrator_info(row, count)

    def set_concentrator_contact(self, ident: str, contact: Contact, when: datetime | None = None) -> None:
        """Record the outcome of a contact with a DC (``hes.db.concentrators.record_contacts``)."""
        with storage_errors(self.engine), self.engine.begin() as connection:
            if concentrator_facts(connection, ident) is None:
                raise UnknownConcentrator(ident)
            record_contacts(connection, [(ident, contact, when or self._clock())])

    # --- sessions --------------------------------------------------------------------------------------

    def _dc_security(self, dc: ConcentratorFacts) -> MeterSecurity:
        """The DC's own security, decrypted once per version of its row (a pass reads hundreds of meters through
        one DC; a change of the DC's keys moves ``updated_at``, and with it the cache key)."""
        key = (dc.id, dc.updated_at)
        known = self._dc_securities.get(key)
        if known is None:
            if len(self._dc_securities) > 100_000:
                self._dc_securities.clear()
            known = self._dc_securities[key] = self._open_secrets(
                "concentrator", dc.id, dc.security_policy, dc.system_title, dc.password_enc, dc.ek_enc, dc.ak_enc)
        return known

    def forget_concentrator_security(self, ident: str) -> None:
        """Drop a DC's cached security (its keys changed without its row saying so: read them again)."""
        for key in [k for k in self._dc_securities if k[0] == ident]:
            self._dc_securities.pop(key, None)

    def _open_secrets(self, kind: str, ident: str, policy: str, title: bytes | None, password: bytes | None,
                      ek: bytes | None, ak: bytes | None) -> MeterSecurity:
        key = self.master_key
        return MeterSecurity(
            policy=cast(Policy, policy),
            password=key.decrypt_optional(password, secret_aad(kind, ident, "password")),
            system_title=title,
            ek=key.decrypt_optional(ek, secret_aad(kind, ident, "ek")),
            ak=key.decrypt_optional(ak, secret_aad(kind, ident, "ak")),
        )

    def target(self, facts: MeterFacts, *, mode: ReadMode = "gateway",
               device_type: DeviceType | None = None) -> MeterTarget:
        """How to reach and authenticate the meter of ``facts`` (``hes.db.devices``), keys decrypted.

        A concentrated read associates with the DC's logical device with the DC's security: the
        meter's own keys are not used then, nor decrypted. ``device_type``: the meter's, when the
        caller already has it (``device_type_of(facts)``).
        """
        serial = facts.serial
        kind = device_type or self.device_type_of(facts)
        dc = facts.concentrator
        if facts.concentrator_id is not None:
            if dc is None or facts.logical_device is None or facts.dc_physical_address is None:
                raise RegistryError(f"meter {serial!r} has an incomplete concentrator link")
            security = MeterSecurity() if mode == "concentrated" else self._open_secrets(
                "meter", serial, facts.security_policy, facts.system_title, facts.password_enc, facts.ek_enc,
                facts.ak_enc)
            route: Route = ViaConcentrator(
                concentrator_id=dc.id, host=dc.host, port=dc.port, dc_security=self._dc_security(dc),
                dc_client_sap=dc.client_sap, management_wport=dc.wport, logical_device=facts.logical_device,
                network_id=dc.network_id, physical_address=facts.dc_physical_address, mode=mode,
                medium=cast(Medium, dc.medium), response_deadline=dc.response_deadline)
            return MeterTarget(serial=serial, route=route, security=security, client_sap=facts.client_sap,
                               device_type=kind, max_get_with_list=facts.max_get_with_list)
        if (facts.host is None or facts.port is None) and facts.serial_device is None:
            raise RegistryError(f"meter {serial!r} has neither a concentrator nor an address")
        security = self._open_secrets("meter", serial, facts.security_policy, facts.system_title, facts.password_enc,
                                      facts.ek_enc, facts.ak_enc)
        route = DirectRoute(
            host=facts.host or "", port=facts.port or 0, interface=cast(Interface, facts.interface or "wrapper"),
            client_sap=facts.client_sap, server_sap=facts.server_sap or 1,
            physical_address=facts.hdlc_physical_address, serial_device=facts.serial_device)
        return MeterTarget(serial=serial, route=route, security=security, client_sap=facts.client_sap,
                           device_type=kind, max_get_with_list=facts.max_get_with_list)

    # --- device types ----------------------------------------------------------------------------------

    def device_types(self) -> Catalogue:
        """The shipped and added device types (``hes.devicetypes.catalogue``: read again every minute)."""
        fresh = cached_catalogue(self.engine)
        if fresh is not None:
            return fresh
        with storage_errors(self.engine):
            return catalogue(self.engine)

    def default_policy(self, serial: str, device_type: str | None = None) -> str | None:
        """The security policy the meter's device type (or ``device_type``) gives its meters, if it says."""
        with self._session() as session:
            meter = self._meter(session, serial)
            name, make, model, firmware = device_type or meter.device_type, meter.make, meter.model, meter.firmware
        try:
            return self.device_types().for_meter(name, make, model, firmware).security_policy
        except DeviceTypeError as exc:
            raise RegistryError(str(exc)) from None

    def device_type_of(self, facts: MeterFacts) -> DeviceType:
        """A meter's device type: by its name, else by its make, model and firmware, else the default type."""
        types = self.device_types()
        if facts.device_type is not None and types.get(facts.device_type) is None:
            forget_catalogue(self.engine)  # perhaps added since by another process: read again once
            types = self.device_types()
        try:
            return types.for_meter(facts.device_type, facts.make, facts.model, facts.firmware)
        except DeviceTypeError as exc:
            raise RegistryError(f"meter {facts.serial}: {exc}") from None

    def add_device_type(self, path: str | os.PathLike[str], *, who: str = "system") -> tuple[DeviceType, bool]:
        """Add (or replace) a device type from its file, checked first; (the type, whether it replaced one)."""
        kind, document = read_device_type(path)
        now = self._clock()
        with self._session() as session:
            row = session.get(DeviceTypeRow, kind.name)
            replaced = row is not None or kind.name in shipped_types()
            if row is None:
                session.add(DeviceTypeRow(name=kind.name, definition=json.dumps(document), added_by=who, added_at=now))
            else:
                row.definition, row.added_by, row.added_at = json.dumps(document), who, now
            record_audit(session, who, f"devicetype add {kind.name} from {os.fspath(path)}",
                         "OK, replaced" if replaced else "OK", when=now)
        forget_catalogue(self.engine)
        return kind, replaced

    def device_type_meters(self) -> dict[str | None, int]:
        """Meters per device type name as registered (None: no name; their type is found by make and model)."""
        with self._session() as session:
            return {name: int(count) for name, count in session.execute(
                select(Meter.device_type, func.count()).group_by(Meter.device_type))}

    def management_target(self, dc: ConcentratorFacts) -> MeterTarget:
        """How to reach a DC itself: its management logical device, with its own security."""
        route = ManagementRoute(dc.id, dc.host, dc.port, dc.wport, dc.client_sap)
        return MeterTarget(serial=dc.id, route=route, security=self._dc_security(dc), client_sap=dc.client_sap)

    def facts(self, serial: str) -> MeterFacts:
        """The meter and its DC as stored (``UnknownMeter`` if not registered)."""
        with storage_errors(self.engine), self.engine.connect() as connection:
            found = meter_facts(connection, serial)
        if found is None:
            raise UnknownMeter(serial)
        return found

    def concentrator(self, ident: str) -> ConcentratorFacts:
        """A DC as stored (``UnknownConcentrator`` if not registered)."""
        with storage_errors(self.engine), self.engine.connect() as connection:
            found = concentrator_facts(connection, ident)
        if found is None:
            raise UnknownConcentrator(ident)
        return found

    def target_for(self, serial: str, *, mode: ReadMode = "gateway") -> MeterTarget:
        """How to reach and authenticate a meter, keys decrypted (whatever its state: callers check it)."""
        return self.target(self.facts(serial), mode=mode)
