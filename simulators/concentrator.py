"""The simulated data concentrator: meter table, concentrated reads from its tables, gateway tunnel to meters.

Addressing (TCP wrapper, IEC 62056-47), documented in docs/SIMULATORS.md:

- wPort 1 (``MANAGEMENT_WPORT``): the DC's own management logical device: clock, serial (the DC id),
  the meter table (``METER_TABLE``, a profile generic in the manufacturer-specific range) and the DC
  event log. Gateway-requests (0xE6) are accepted here, from any client wPort, with or without an
  association with the DC itself: the HES associates end to end with the meter.
- wPort 0x100 + i (``METER_WPORT_BASE + i``): the concentrated logical device of the i-th meter the
  DC registered (0-based, in the order they joined), answering that meter's load profile, daily
  values, event logs and last registers from what the DC collected, with the objects of the meter's
  own make. A meter keeps its wPort while others join or leave; a wPort is never given twice.
- Client SAPs: 0x01 management (the DC's own security: HLS-GMAC with suite 0 by default, keys from
  the seed), 0x10 public (no security). The same two serve every logical device of the DC.

How the DC reads its meters: directly from each meter's model, not through a DLMS session over
the link. On its schedule (every ``read_period`` field seconds) it asks the meter's ``LinkModel``
whether an exchange would pass (reachable window, loss draw, a few attempts) without sleeping,
which costs microseconds per meter and lets one process hold 10,000 meters. A successful read moves
the meter's "collected until" mark to the read time. The DC's tables are that mark: the last
registers are the meter's values at the mark (the meter's data is a pure function of field time),
and a concentrated buffer read asks the meter's own model (through its public client, in process,
no link) for the rows up to the mark, so a meter the DC could not reach yields only older intervals.
Tunnelled (gateway) APDUs, on the other hand, cross the link for real: latency slept, loss raised.

The DC has its own clock (``DcClock``): field time plus an offset that drifts at a fixed rate. The
clock objects of all its logical devices show it, and so do the timestamps the DC makes itself
(meter table, event log); the management client may set it on the management logical device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Literal

from protocols.acse import MechanismName
from protocols.association import (
    ActionRequested,
    Associated,
    CipheringMode,
    ClientAssociation,
    ClientConfig,
    GetRequested,
    GetResult,
    GetWithListRequested,
    SecurityPolicy,
    ServerAssociation,
    ServerConfig,
    SetRequested,
)
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DlmsError
from protocols.obis import ObisCode
from protocols.xdlms.common import (
    ActionResult,
    CosemAttributeDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)
from protocols.xdlms.gateway import GatewayResponse, decode_gateway_request
from protocols.xdlms.selective_access import (
    ENTRY_SELECTOR,
    RANGE_SELECTOR,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
)
from simulators.clock import FieldClock
from simulators.counters import Counters, CounterStore, MemoryCounterStore
from simulators.endpoint import LogicalDevice, Session
from simulators.faults import FaultPlan
from simulators.links import LinkLost, LinkModel
from simulators.meter import SimulatedMeter
from simulators.transport import close_connections, serve_wrapper

__all__ = [
    "CLOCK",
    "DAILY_VALUES",
    "DC_EVENT_LOG",
    "EVENT_LOGS",
    "LOAD_PROFILE",
    "MANAGEMENT_SAP",
    "NETWORK_ID",
    "MANAGEMENT_WPORT",
    "METER_TABLE",
    "METER_TABLE_COLUMNS",
    "METER_WPORT_BASE",
    "PUBLIC_SAP",
    "PolicyName",
    "REGISTERS",
    "SERIAL",
    "ConcentratorConfig",
    "read_model",
    "ConcentratorError",
    "DcClock",
    "DcEvent",
    "DcMeter",
    "SecurityConfig",
    "SimulatedConcentrator",
    "security_policy",
]

logger = logging.getLogger(__name__)

MANAGEMENT_WPORT = 1
METER_WPORT_BASE = 0x100
MANAGEMENT_SAP = 0x01
PUBLIC_SAP = 0x10
#: Gateway network id the DC answers for (one PLC network per DC).
NETWORK_ID = 0

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
SERIAL = ObisCode(0, 0, 96, 1, 0, 255)
ASSOCIATION_LN = ObisCode(0, 0, 40, 0, 0, 255)
LOAD_PROFILE = ObisCode(1, 0, 99, 1, 0, 255)
DAILY_VALUES = ObisCode(1, 0, 98, 1, 0, 255)
EVENT_LOGS = (ObisCode(0, 0, 99, 98, 0, 255), ObisCode(0, 0, 99, 98, 1, 255), ObisCode(0, 0, 99, 98, 2, 255))
#: A+ total, T1, T2, A-, voltage L1: what the DC captures at each successful read ("last registers").
REGISTERS = (
    ObisCode(1, 0, 1, 8, 0, 255),
    ObisCode(1, 0, 1, 8, 1, 255),
    ObisCode(1, 0, 1, 8, 2, 255),
    ObisCode(1, 0, 2, 8, 0, 255),
    ObisCode(1, 0, 32, 7, 0, 255),
)
#: The meter table: IC 7 in the manufacturer-specific range (group B = 128), one row per meter.
METER_TABLE = ObisCode(0, 128, 99, 1, 0, 255)
#: Its columns, IC 1 objects in the same manufacturer-specific range (attribute 2 each).
METER_TABLE_COLUMNS = (
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 1, 0, 255), 2),  # serial, visible-string
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 2, 0, 255), 2),  # physical address, octet-string
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 3, 0, 255), 2),  # commissioned, boolean
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 4, 0, 255), 2),  # last successful read, date-time (DC time)
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 5, 0, 255), 2),  # reachable, boolean
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 6, 0, 255), 2),  # concentrated LD (wPort), long-unsigned
    CaptureObjectDefinition(1, ObisCode(0, 128, 96, 7, 0, 255), 2),  # "MAKE MODEL FIRMWARE", visible-string
)
#: The DC event log (the standard event log's OBIS on the DC's own logical device).
DC_EVENT_LOG = ObisCode(0, 0, 99, 98, 0, 255)
_EVENT_LOG_COLUMNS = (
    CaptureObjectDefinition(8, CLOCK, 2),
    CaptureObjectDefinition(1, ObisCode(0, 0, 96, 11, 0, 255), 2),
)
#: Local time of the DC's clock: UTC+1 fixed, like the simulated meters (UTC = local + deviation).
DEVIATION = -60
_UNSPECIFIED_DATE_TIME = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0xFF]) + b"\x00"
_EMPTY_ARRAY = encode_data(Data.array(()))
_PROFILE_OBJECTS = (LOAD_PROFILE, DAILY_VALUES, *EVENT_LOGS)
_MAX_DC_EVENTS = 1000
#: Bound on a DC clock's offset and drift (a year of seconds): beyond it, dates leave what COSEM encodes.
_MAX_CLOCK_SECONDS = 365 * 86400.0

PolicyName = Literal["none", "lls", "hls-gmac"]


class ConcentratorError(ValueError):
    """A concentrator set-up that cannot work (duplicate address, bad security); one line says why."""


class DcEvent(IntEnum):
    """Codes in the DC event log: power up and clock adjusted as in IDIS; the meter codes are this simulator's own.

    ``CLOCK_ADJUSTED`` is IDIS's "clock adjusted (new date/time)", stamped with the DC time set. The
    table events say which meter only through the meter table (the log has no meter column).
    """

    POWER_UP = 2
    CLOCK_ADJUSTED = 5
    METER_UNREACHABLE = 200
    METER_REACHABLE = 201
    METER_JOINED = 202
    METER_LEFT = 203
    METER_READDRESSED = 204


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """One device's security as the manifest gives it: policy name, LLS password, system title, EK, AK."""

    policy: PolicyName = "none"
    password: bytes | None = None
    system_title: bytes | None = None
    ek: bytes | None = None
    ak: bytes | None = None

    def to_json(self) -> dict[str, str | None]:
        def hexed(value: bytes | None) -> str | None:
            return value.hex() if value is not None else None

        return {
            "policy": self.policy,
            "password": hexed(self.password),
            "system_title": hexed(self.system_title),
            "ek": hexed(self.ek),
            "ak": hexed(self.ak),
        }


def security_policy(security: SecurityConfig) -> SecurityPolicy:
    """The protocol stack's ``SecurityPolicy`` for a server with this security (ConcentratorError if unusable)."""
    try:
        if security.policy == "none":
            return SecurityPolicy()
        if security.policy == "lls":
            return SecurityPolicy(mechanism=MechanismName.LLS, password=security.password)
        return SecurityPolicy(
            mechanism=MechanismName.HLS_GMAC,
            ciphering=CipheringMode.SERVICE_SPECIFIC,
            system_title=security.system_title,
            encryption_key=security.ek,
            authentication_key=security.ak,
        )
    except ValueError as exc:
        raise ConcentratorError(f"security {security.policy}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ConcentratorConfig:
    """A DC's identity and behaviour. ``read_period`` and ``retention`` are field time."""

    id: str
    seed: int | str
    security: SecurityConfig
    read_period: float = 900.0
    #: Exchanges tried per meter and read before the DC gives the meter up until the next period.
    read_attempts: int = 3
    #: How far back the DC's tables go (rows older than this before the mark are not served).
    retention: timedelta = timedelta(days=40)
    #: The DC clock's offset from field time at start (seconds) and how it drifts (seconds per field day).
    clock_offset: float = 0.0
    clock_drift: float = 0.0

    def __post_init__(self) -> None:
        if self.read_period <= 0:
            raise ConcentratorError(f"read period {self.read_period} must be positive (field seconds)")
        if self.read_attempts < 1:
            raise ConcentratorError(f"read attempts {self.read_attempts} must be at least 1")
        for name, value in (("clock offset", self.clock_offset), ("clock drift", self.clock_drift)):
            if not math.isfinite(value) or abs(value) > _MAX_CLOCK_SECONDS:
                raise ConcentratorError(f"DC {self.id}: {name} {value} outside +-{_MAX_CLOCK_SECONDS:.0f} s")


class DcClock:
    """A DC's own clock: field time + an offset that drifts ``drift`` seconds per field day.

    Setting the offset (or the time) restarts the drift from that instant, as a real clock's
    crystal keeps its error after a correction.
    """

    __slots__ = ("_base", "_drift", "_field", "_since")

    def __init__(self, field: FieldClock, offset: float = 0.0, drift: float = 0.0) -> None:
        self._field = field
        self._base = offset
        self._drift = drift
        self._since = field.now()

    @property
    def drift(self) -> float:
        """Seconds per field day the clock gains (negative: loses)."""
        return self._drift

    def offset(self, at: datetime | None = None) -> float:
        """DC time minus field time, in seconds, at field instant ``at`` (default now)."""
        if not self._drift:
            return self._base
        at = self._field.now() if at is None else at
        return self._base + self._drift * (at - self._since).total_seconds() / 86400.0

    def time_at(self, at: datetime) -> datetime:
        """What the DC's clock showed (or shows) at field instant ``at``."""
        if not self._drift and not self._base:
            return at  # the common case: no object made per meter and read
        return at + timedelta(seconds=self.offset(at))

    def now(self) -> datetime:
        return self.time_at(self._field.now())

    def set_offset(self, seconds: float) -> None:
        if not math.isfinite(seconds) or abs(seconds) > _MAX_CLOCK_SECONDS:
            raise ConcentratorError(f"clock offset {seconds} s outside +-{_MAX_CLOCK_SECONDS:.0f} s")
        self._base = seconds
        self._since = self._field.now()

    def set_time(self, dc_time: datetime) -> None:
        """Make DC time equal ``dc_time`` now (what a client's SET of the clock does)."""
        now = self._field.now()
        self.set_offset((dc_time - now).total_seconds())


@dataclass(slots=True, eq=False)
class DcMeter:
    """One row of the meter table and what the DC needs to reach that meter."""

    #: The meter's concentrated logical device: kept while it stays in the table, never reused.
    wport: int
    serial: str
    physical_address: int
    device: LogicalDevice
    link: LinkModel
    public_sap: int = PUBLIC_SAP
    commissioned: bool = True
    #: Field time of the last successful read: the DC holds the meter's data up to here.
    last_read: datetime | None = None
    reachable: bool = True
    #: "MAKE MODEL FIRMWARE" as the meter table shows it.
    identification: str = ""
    #: The DC's clock at the last successful read (what the meter table shows).
    last_read_shown: datetime | None = None

    @property
    def gateway_address(self) -> bytes:
        """The physical device address as the gateway-request carries it: two bytes, big-endian."""
        return self.physical_address.to_bytes(2, "big")


# --- reading a meter's model in process --------------------------------------------------------------


async def read_model(
    device: LogicalDevice,
    client_sap: int,
    requests: Sequence[tuple[CosemAttributeDescriptor, SelectiveAccessDescriptor | None]],
) -> list[bytes | DataAccessResult]:
    """GET ``requests`` from a device through its (unsecured) client SAP, in process: no link, no sockets.

    The DC uses the meter's public client so it never consumes the invocation counters of the
    management client the head-end uses end to end. A device that refuses gives OBJECT_UNAVAILABLE.
    """
    unavailable: list[bytes | DataAccessResult] = [DataAccessResult.OBJECT_UNAVAILABLE] * len(requests)
    session = device.open_session(client_sap)
    if session is None:
        return unavailable
    client = ClientAssociation(ClientConfig())
    try:
        client.associate()
        if not any(isinstance(e, Associated) for e in await _pump(client, session)):
            return unavailable
        results: list[bytes | DataAccessResult] = []
        for descriptor, selection in requests:
            client.get(descriptor, selection)
            got = [e for e in await _pump(client, session) if isinstance(e, GetResult)]
            results.append(got[0].data if got else DataAccessResult.OTHER_REASON)
        client.release()
        await _pump(client, session)
        return results
    except DlmsError as exc:
        logger.info("in-process read failed: %s", exc)
        return unavailable
    finally:
        session.close()


async def _pump(client: ClientAssociation, session: Session) -> list[object]:
    events: list[object] = []
    # Bounded: a datablock answer needs one round per block; a runaway peer cannot loop us forever.
    for _ in range(100_000):
        outgoing = client.data_to_send()
        if not outgoing:
            return events
        for apdu in outgoing:
            for answer in await session.handle(apdu):
                events += client.receive_apdu(answer)
    raise ConcentratorError("in-process read did not settle")


# --- object models -------------------------------------------------------------------------------------

def _date_time(moment: datetime | None) -> Data:
    if moment is None:
        return Data.octet_string(_UNSPECIFIED_DATE_TIME)
    return Data.octet_string(CosemDateTime.from_datetime(moment, deviation=DEVIATION).encode())


def _logical_name(obis: ObisCode) -> bytes:
    return encode_data(Data.octet_string(bytes(obis)))


def _select_entries(buffer: Data, entry: EntryDescriptor) -> bytes:
    rows = list(buffer.value)
    first = max(entry.from_entry, 1) - 1
    last = entry.to_entry if entry.to_entry else len(rows)
    picked = rows[first:last]
    if entry.from_selected_value > 1 or entry.to_selected_value:
        low = max(entry.from_selected_value, 1) - 1
        picked = [
            Data.structure(row.value[low:entry.to_selected_value or len(row.value)]) for row in picked
        ]
    return encode_data(Data.array(picked))


def _instant(value: Data) -> datetime | None:
    try:
        if value.tag == DataTag.OCTET_STRING and len(value.value) == 12:
            moment = CosemDateTime.decode(value.value)
        elif value.tag == DataTag.DATE_TIME and isinstance(value.value, CosemDateTime):
            moment = value.value
        else:
            return None
        return moment.to_datetime(default_deviation=DEVIATION)
    except (DlmsError, ValueError, OverflowError):
        return None


class _DcSession:
    """One client's association with one of the DC's logical devices; gateway APDUs on the management LD."""

    def __init__(
        self,
        dc: SimulatedConcentrator,
        device: _DeviceBase,
        client_sap: int,
        association: ServerAssociation | None,
        counter_key: str,
        *,
        gateway: bool,
    ) -> None:
        self._dc = dc
        self._device = device
        self._client_sap = client_sap
        self._association = association
        self._counter_key = counter_key
        self._gateway = gateway
        #: Open end-to-end sessions by physical address, with the meter each was opened with.
        self._tunnels: dict[int, tuple[DcMeter, Session]] = {}

    async def handle(self, apdu: bytes) -> list[bytes]:
        if self._gateway and apdu[:1] == b"\xe6":
            return await self._tunnel(apdu)
        association = self._association
        if association is None:
            # A client SAP that may only tunnel: the DC itself does not talk to it.
            logger.info("DC %s: client SAP %d may only send gateway-requests; APDU ignored",
                        self._dc.config.id, self._client_sap)
            return []
        for event in association.receive_apdu(apdu):
            if isinstance(event, GetRequested):
                association.respond_get(event.invoke_id, await self._device.get(event))
            elif isinstance(event, GetWithListRequested):
                results = [
                    await self._device.get(
                        GetRequested(event.invoke_id, item.attribute_descriptor, item.access_selection)
                    )
                    for item in event.items
                ]
                association.respond_get_with_list(event.invoke_id, results)
            elif isinstance(event, SetRequested):
                association.respond_set(event.invoke_id, self._device.set(event, self._client_sap))
            elif isinstance(event, ActionRequested):
                association.respond_action(event.invoke_id, ActionResult.READ_WRITE_DENIED)
        self._dc.counters.put(
            self._counter_key,
            self._client_sap,
            Counters(association.next_invocation_counter, association.client_invocation_counter),
        )
        return association.data_to_send()

    async def _tunnel(self, apdu: bytes) -> list[bytes]:
        try:
            request = decode_gateway_request(apdu)
        except DlmsError as exc:
            logger.info("DC %s: undecodable gateway-request (%s); ignored", self._dc.config.id, exc)
            return []
        address = int.from_bytes(request.physical_device_address, "big")
        meter = self._dc.by_address.get(address)
        if meter is None or request.network_id != NETWORK_ID:
            logger.info("DC %s: gateway-request for unknown meter %s on network %d; ignored",
                        self._dc.config.id, request.physical_device_address.hex(), request.network_id)
            return []
        tunnel = self._tunnels.get(address)
        if tunnel is not None and tunnel[0] is not meter:
            # The address now belongs to another meter (it left, or was re-registered elsewhere).
            tunnel[1].close()
            tunnel = None
        if tunnel is None:
            opened = meter.device.open_session(self._client_sap)
            if opened is None:
                logger.info("DC %s: meter %s refuses client SAP %d", self._dc.config.id, meter.serial,
                            self._client_sap)
                return []
            for old, (other, stale) in list(self._tunnels.items()):
                if other is meter:
                    # The meter re-registered under this address: its session at the old one is over.
                    stale.close()
                    del self._tunnels[old]
            tunnel = self._tunnels[address] = (meter, opened)
        session = tunnel[1]
        clock = self._dc.clock
        out: list[bytes] = []
        try:
            await meter.link.carry(clock, len(request.apdu))
            for answer in await session.handle(request.apdu):
                await meter.link.carry(clock, len(answer))
                out.append(GatewayResponse(request.network_id, request.physical_device_address, answer).encode())
        except LinkLost as exc:
            # No answer at all: the head-end sees what a real DC's tunnel does, its own timeout.
            logger.info("DC %s: tunnel to %s: %s", self._dc.config.id, meter.serial, exc)
        return out

    def close(self) -> None:
        tunnels, self._tunnels = self._tunnels, {}
        for _meter, session in tunnels.values():
            session.close()


class _DeviceBase:
    """What the DC's logical devices share: sessions with the DC's security per client SAP."""

    def __init__(self, dc: SimulatedConcentrator, counter_key: str, *, gateway: bool) -> None:
        self._dc = dc
        self._counter_key = counter_key
        self._gateway = gateway

    def open_session(self, client_sap: int) -> Session | None:
        dc = self._dc
        if client_sap == PUBLIC_SAP:
            policy: SecurityPolicy | None = SecurityPolicy()
        elif client_sap == MANAGEMENT_SAP:
            policy = dc.policy
        elif self._gateway:
            # Other client SAPs (e.g. a meter's own management client) reach the management LD only to tunnel.
            policy = None
        else:
            return None
        association: ServerAssociation | None = None
        if policy is not None:
            stored = dc.counters.get(self._counter_key, client_sap)
            association = ServerAssociation(ServerConfig(
                policy=policy,
                server_challenge=dc.challenge(),
                invocation_counter=stored.server_next,
                client_invocation_counter=stored.client_last,
            ))
        return _DcSession(dc, self, client_sap, association, self._counter_key, gateway=self._gateway)

    async def get(self, request: GetRequested) -> bytes | DataAccessResult:
        raise NotImplementedError

    def set(self, request: SetRequested, client_sap: int) -> DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED


class _ManagementDevice(_DeviceBase):
    """wPort 1: clock, serial, meter table, DC event log; the management client may set the clock."""

    def set(self, request: SetRequested, client_sap: int) -> DataAccessResult:
        d = request.descriptor
        if (d.class_id, d.instance_id, d.attribute_id) != (8, CLOCK, 2) or client_sap != MANAGEMENT_SAP \
                or request.access_selection is not None:
            return DataAccessResult.READ_WRITE_DENIED
        try:
            value = decode_data_exact(request.value)
        except DlmsError:
            return DataAccessResult.TYPE_UNMATCHED
        if value.tag not in (DataTag.OCTET_STRING, DataTag.DATE_TIME):
            return DataAccessResult.TYPE_UNMATCHED
        moment = _instant(value)
        if moment is None:
            # Not 12 octets, or unspecified fields: no instant to set the clock to.
            return DataAccessResult.OTHER_REASON
        try:
            self._dc.set_time(moment)
        except ConcentratorError:
            return DataAccessResult.OTHER_REASON
        return DataAccessResult.SUCCESS

    async def get(self, request: GetRequested) -> bytes | DataAccessResult:
        d = request.descriptor
        dc = self._dc
        key = (d.class_id, d.instance_id)
        if d.attribute_id == 1 and key in ((8, CLOCK), (1, SERIAL), (7, METER_TABLE), (7, DC_EVENT_LOG)):
            return _logical_name(d.instance_id)
        if key == (8, CLOCK) and d.attribute_id == 2:
            return encode_data(_date_time(dc.now()))
        if key == (1, SERIAL) and d.attribute_id == 2:
            return encode_data(Data.visible_string(dc.config.id))
        if key == (7, METER_TABLE):
            return self._table(d.attribute_id, request.access_selection)
        if key == (7, DC_EVENT_LOG):
            return self._events(d.attribute_id, request.access_selection)
        return DataAccessResult.OBJECT_UNDEFINED

    def _table(self, attribute: int, selection: SelectiveAccessDescriptor | None) -> bytes | DataAccessResult:
        meters = self._dc.meters
        if attribute == 3:
            return encode_data(Data.array(c.to_data() for c in METER_TABLE_COLUMNS))
        if attribute in (7, 8):
            return encode_data(Data.double_long_unsigned(len(meters)))
        if attribute != 2:
            return DataAccessResult.OBJECT_UNDEFINED
        rows = Data.array(
            Data.structure((
                Data.visible_string(m.serial),
                Data.octet_string(m.gateway_address),
                Data.boolean(m.commissioned),
                _date_time(m.last_read_shown),
                Data.boolean(m.reachable),
                Data.long_unsigned(m.wport),
                Data.visible_string(m.identification),
            ))
            for m in meters
        )
        return _apply_entry_only(rows, selection)

    def _events(self, attribute: int, selection: SelectiveAccessDescriptor | None) -> bytes | DataAccessResult:
        if attribute == 3:
            return encode_data(Data.array(c.to_data() for c in _EVENT_LOG_COLUMNS))
        if attribute in (7, 8):
            return encode_data(Data.double_long_unsigned(len(self._dc.events)))
        if attribute != 2:
            return DataAccessResult.OBJECT_UNDEFINED
        since: datetime | None = None
        until: datetime | None = None
        entry: EntryDescriptor | None = None
        if selection is not None:
            try:
                if selection.access_selector == RANGE_SELECTOR:
                    span = RangeDescriptor.from_data(selection.parameters())
                    since, until = _instant(span.from_value), _instant(span.to_value)
                elif selection.access_selector == ENTRY_SELECTOR:
                    entry = EntryDescriptor.from_data(selection.parameters())
                else:
                    return DataAccessResult.OBJECT_UNAVAILABLE
            except DlmsError:
                return DataAccessResult.TYPE_UNMATCHED
        rows = Data.array(
            Data.structure((_date_time(at), Data.long_unsigned(int(code))))
            for at, code in self._dc.events
            if (since is None or at >= since) and (until is None or at <= until)
        )
        return _select_entries(rows, entry) if entry is not None else encode_data(rows)


def _apply_entry_only(rows: Data, selection: SelectiveAccessDescriptor | None) -> bytes | DataAccessResult:
    if selection is None:
        return encode_data(rows)
    if selection.access_selector != ENTRY_SELECTOR:
        # The meter table has no clock column: range access has nothing to restrict on.
        return DataAccessResult.OBJECT_UNAVAILABLE
    try:
        return _select_entries(rows, EntryDescriptor.from_data(selection.parameters()))
    except DlmsError:
        return DataAccessResult.TYPE_UNMATCHED


class _ConcentratedDevice(_DeviceBase):
    """wPort 0x100 + i: one meter's data as the DC holds it (rows up to its last successful read)."""

    def __init__(self, dc: SimulatedConcentrator, meter: DcMeter) -> None:
        super().__init__(dc, f"{dc.config.id}#{meter.wport}", gateway=False)
        self.meter = meter

    async def get(self, request: GetRequested) -> bytes | DataAccessResult:
        d = request.descriptor
        meter = self.meter
        if self._dc.by_wport.get(meter.wport) is not meter:
            # The meter left the table while this association was open: the DC has nothing of it any more.
            return DataAccessResult.OBJECT_UNAVAILABLE
        if (d.class_id, d.instance_id) == (1, SERIAL):
            if d.attribute_id == 1:
                return _logical_name(SERIAL)
            return encode_data(Data.visible_string(meter.serial)) if d.attribute_id == 2 else \
                DataAccessResult.OBJECT_UNDEFINED
        if (d.class_id, d.instance_id) == (8, CLOCK) and d.attribute_id in (1, 2):
            return _logical_name(CLOCK) if d.attribute_id == 1 else encode_data(_date_time(self._dc.now()))
        device = meter.device
        # The meter's own make decides which objects the DC keeps for it.
        registers = device.register_objects if isinstance(device, SimulatedMeter) else REGISTERS
        profiles = device.profile_objects if isinstance(device, SimulatedMeter) else _PROFILE_OBJECTS
        if d.class_id == 3 and d.instance_id in registers:
            if d.attribute_id == 2:
                return self._register(d.instance_id)
            return await self._forward(request.descriptor, None)
        if d.class_id == 7 and d.instance_id in profiles:
            if d.attribute_id == 2:
                return await self._buffer(request)
            if d.attribute_id == 7:
                return DataAccessResult.OBJECT_UNAVAILABLE
            return await self._forward(request.descriptor, None)
        return DataAccessResult.OBJECT_UNDEFINED

    def _register(self, obis: ObisCode) -> bytes | DataAccessResult:
        """The register as the DC captured it at its last read of the meter (its value at that instant)."""
        meter = self.meter
        device = meter.device
        if meter.last_read is None:
            # Nothing collected yet: the DC has no reading of this meter to give.
            return DataAccessResult.TEMPORARY_FAILURE
        if not isinstance(device, SimulatedMeter):
            return DataAccessResult.OBJECT_UNAVAILABLE
        value = device.register_value(obis, meter.last_read)
        return DataAccessResult.OBJECT_UNDEFINED if value is None else encode_data(value)

    async def _forward(
        self, descriptor: CosemAttributeDescriptor, selection: SelectiveAccessDescriptor | None
    ) -> bytes | DataAccessResult:
        return (await read_model(self.meter.device, self.meter.public_sap, [(descriptor, selection)]))[0]

    async def _buffer(self, request: GetRequested) -> bytes | DataAccessResult:
        mark = self.meter.last_read
        if mark is None:
            return _EMPTY_ARRAY
        selection = request.access_selection
        oldest = mark - self._dc.config.retention
        column = CaptureObjectDefinition(8, CLOCK, 2)
        whole = RangeDescriptor(column, _date_time(oldest), _date_time(mark)).to_access_selection()
        if selection is None:
            return await self._forward(request.descriptor, whole)
        try:
            if selection.access_selector == RANGE_SELECTOR:
                span = RangeDescriptor.from_data(selection.parameters())
                since = _instant(span.from_value)
                until = _instant(span.to_value)
                if since is not None and since > mark:
                    return _EMPTY_ARRAY
                if until is None or until > mark:
                    # Newer than the DC's last read of this meter: the DC gives only what it has.
                    span = RangeDescriptor(span.restricting_object, span.from_value, _date_time(mark),
                                           span.selected_values)
                return await self._forward(request.descriptor, span.to_access_selection())
            if selection.access_selector == ENTRY_SELECTOR:
                entry = EntryDescriptor.from_data(selection.parameters())
                buffer = await self._forward(request.descriptor, whole)
                if isinstance(buffer, DataAccessResult):
                    return buffer
                return _select_entries(decode_data_exact(buffer), entry)
        except DlmsError:
            return DataAccessResult.TYPE_UNMATCHED
        return DataAccessResult.OBJECT_UNAVAILABLE


# --- the concentrator ------------------------------------------------------------------------------------


class SimulatedConcentrator:
    """A DC: wrapper server, management LD, one concentrated LD per meter, gateway, read schedule.

    ``faults`` is the DC's WAN fault plan (F2's ``FaultPlan``), applied by the TCP server: set
    ``refuse_connections`` for an outage, ``silent`` for a failed modem, ``drop_mid_transfer``...
    ``meters`` is the meter table in its order; ``by_address``, ``by_serial`` and ``by_wport`` index
    it. ``before_cycle`` (set by the fleet for table churn) runs at the start of every read cycle.
    """

    def __init__(
        self,
        config: ConcentratorConfig,
        clock: FieldClock,
        counters: CounterStore | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.counters: CounterStore = counters if counters is not None else MemoryCounterStore()
        self.faults = faults if faults is not None else FaultPlan(seed=config.seed, name=config.id)
        self.policy = security_policy(config.security)
        self.meters: list[DcMeter] = []
        self.by_address: dict[int, DcMeter] = {}
        self.by_serial: dict[str, DcMeter] = {}
        self.by_wport: dict[int, DcMeter] = {}
        #: The DC event log: (DC time, code), oldest first.
        self.events: list[tuple[datetime, DcEvent]] = []
        self.dc_clock = DcClock(clock, config.clock_offset, config.clock_drift)
        self.before_cycle: Callable[[SimulatedConcentrator, datetime], None] | None = None
        self._next_wport = METER_WPORT_BASE
        self._devices: dict[int, _ConcentratedDevice] = {}
        self._management = _ManagementDevice(self, f"{config.id}#{MANAGEMENT_WPORT}", gateway=True)
        self._challenges = random.Random(f"{config.seed}:dc:{config.id}:challenge")
        self._server: asyncio.Server | None = None
        self._schedule: asyncio.Task[None] | None = None
        #: Completed read cycles (tests wait on this).
        self.cycles = 0
        #: TCP connections open on the DC's WAN port now, and the most at once since start (what a
        #: head-end's per-DC session budget allows: each session holds one connection).
        self.connections = 0
        self.peak_connections = 0

    # --- set-up ------------------------------------------------------------------------------------

    def add_meter(
        self,
        serial: str,
        physical_address: int,
        device: LogicalDevice,
        link: LinkModel,
        *,
        public_sap: int = PUBLIC_SAP,
        commissioned: bool = True,
        last_read: datetime | None = None,
        identification: str | None = None,
        announce: bool = False,
    ) -> DcMeter:
        """Put a meter in the table with the next wPort never used here.

        ``last_read`` is what the DC had collected before the simulation began; ``identification``
        defaults to the meter's "MAKE MODEL FIRMWARE"; ``announce`` logs ``METER_JOINED`` (a meter
        that registers while the DC runs).
        """
        self._check_address(physical_address)
        if serial in self.by_serial:
            raise ConcentratorError(f"DC {self.config.id}: meter {serial} added twice")
        if self._next_wport > 0xFFFF:
            raise ConcentratorError(f"DC {self.config.id}: no wPort left for meter {serial}")
        if identification is None:
            identification = device.device_type.identification if isinstance(device, SimulatedMeter) else ""
        shown = None if last_read is None else self.dc_clock.time_at(last_read)
        meter = DcMeter(self._next_wport, serial, physical_address, device, link, public_sap, commissioned,
                        last_read, True, identification, shown)
        self._next_wport += 1
        self.meters.append(meter)
        self.by_address[physical_address] = meter
        self.by_serial[serial] = meter
        self.by_wport[meter.wport] = meter
        if announce:
            self._log(DcEvent.METER_JOINED, self.now())
        return meter

    def remove_meter(self, serial: str) -> DcMeter:
        """Take a meter out of the table: its wPort and gateway address stop answering; logs ``METER_LEFT``."""
        meter = self._meter(serial)
        self.meters.remove(meter)
        del self.by_address[meter.physical_address]
        del self.by_serial[serial]
        del self.by_wport[meter.wport]
        self._devices.pop(meter.wport, None)
        self._log(DcEvent.METER_LEFT, self.now())
        return meter

    def readdress_meter(self, serial: str, physical_address: int) -> int:
        """The meter registered again under another physical address (logs ``METER_READDRESSED``); the old one."""
        meter = self._meter(serial)
        self._check_address(physical_address)
        old = meter.physical_address
        del self.by_address[old]
        meter.physical_address = physical_address
        self.by_address[physical_address] = meter
        self._log(DcEvent.METER_READDRESSED, self.now())
        return old

    def free_address(self, first: int, last: int = 0xFFFF) -> int:
        """The lowest physical address in [first, last] no meter of this DC holds."""
        taken = self.by_address
        for address in range(first, last + 1):
            if address not in taken:
                return address
        raise ConcentratorError(f"DC {self.config.id}: no free physical address in {first:#06x}-{last:#06x}")

    def _meter(self, serial: str) -> DcMeter:
        meter = self.by_serial.get(serial)
        if meter is None:
            raise ConcentratorError(f"DC {self.config.id}: no meter {serial} in its table")
        return meter

    def _check_address(self, physical_address: int) -> None:
        if not 0 <= physical_address <= 0xFFFF:
            raise ConcentratorError(f"physical address {physical_address} does not fit two bytes")
        holder = self.by_address.get(physical_address)
        if holder is not None:
            raise ConcentratorError(
                f"DC {self.config.id}: physical address {physical_address:#06x} is taken by meter {holder.serial}")

    def challenge(self) -> bytes:
        return self._challenges.randbytes(16)

    def logical_device(self, wport: int) -> LogicalDevice | None:
        """The device at destination wPort ``wport`` (what ``serve_wrapper`` calls)."""
        if wport == MANAGEMENT_WPORT:
            return self._management
        device = self._devices.get(wport)
        if device is None:
            meter = self.by_wport.get(wport)
            if meter is None:
                return None
            # Made on first use: 10,000 meters cost no device object until someone reads them.
            device = self._devices[wport] = _ConcentratedDevice(self, meter)
        return device

    # --- the DC's clock ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """DC time: what its clock objects show and what it stamps its own records with."""
        return self.dc_clock.now()

    def clock_offset(self) -> float:
        """DC time minus field time now, in seconds."""
        return self.dc_clock.offset()

    def set_clock_offset(self, seconds: float) -> None:
        """Put the DC's clock ``seconds`` off field time (a knob: nothing is logged); drift continues from here."""
        self.dc_clock.set_offset(seconds)

    def set_time(self, dc_time: datetime) -> None:
        """Set the DC's clock, as a client's SET does: logs ``CLOCK_ADJUSTED`` at the new time."""
        self.dc_clock.set_time(dc_time)
        self._log(DcEvent.CLOCK_ADJUSTED, self.now())

    # --- reading the meters ----------------------------------------------------------------------

    def _log(self, code: DcEvent, at: datetime) -> None:
        self.events.append((at, code))
        if len(self.events) > _MAX_DC_EVENTS:
            del self.events[: len(self.events) - _MAX_DC_EVENTS]

    def _link_passes(self, meter: DcMeter, at: datetime) -> bool:
        link = meter.link
        if not link.reachable(at):
            link.stats.unreachable += 1
            return False
        for _ in range(self.config.read_attempts):
            # A request and its answer both cross the link; the latency is counted, not slept.
            link.stats.field_seconds += link.draw_latency(64) + link.draw_latency(256)
            if not link.draw_lost():
                link.stats.carried += 1
                return True
            link.stats.lost += 1
        return False

    async def read_meter(self, meter: DcMeter) -> bool:
        """One scheduled read of one meter: True when it was reached (its data collected up to now)."""
        now = self.clock.now()
        if not meter.commissioned:
            return False
        if not self._link_passes(meter, now):
            if meter.reachable:
                meter.reachable = False
                self._log(DcEvent.METER_UNREACHABLE, self.dc_clock.time_at(now))
            return False
        meter.last_read = now
        meter.last_read_shown = self.dc_clock.time_at(now)
        if not meter.reachable:
            meter.reachable = True
            self._log(DcEvent.METER_REACHABLE, meter.last_read_shown)
        return True

    async def read_cycle(self) -> int:
        """Read every meter once now (what the schedule does each period); returns how many were reached."""
        if self.before_cycle is not None:
            self.before_cycle(self, self.clock.now())
        reached = 0
        # A copy: the table may change while the cycle yields to the servers.
        for number, meter in enumerate(list(self.meters)):
            if self.by_wport.get(meter.wport) is not meter:
                continue
            reached += await self.read_meter(meter)
            if number % 50 == 49:
                # Let the servers answer between batches: a cycle of 500 meters must not stall the DC.
                await asyncio.sleep(0)
        self.cycles += 1
        return reached

    async def _run_schedule(self) -> None:
        period = self.config.read_period
        # A DC reads its meters when it powers up, then on every period boundary of field time.
        await self.read_cycle()
        while True:
            now = self.clock.now()
            seconds = now.timestamp()
            boundary = datetime.fromtimestamp((seconds // period + 1) * period, now.tzinfo)
            # Sleep in short wall steps so a changed time scale or a jump takes effect promptly.
            while (left := (boundary - self.clock.now()).total_seconds()) > 0:
                wall = self.clock.wall_seconds(left)
                await asyncio.sleep(min(wall, 1.0) if self.clock.scale else 1.0)
            await self.read_cycle()

    # --- running ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise ConcentratorError(f"DC {self.config.id} is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, schedule: bool = True) -> None:
        """Listen on ``host:port`` (0: a free port) and, with ``schedule``, read the meters every period."""
        if self._server is not None:
            raise ConcentratorError(f"DC {self.config.id} is already started")
        self._server = await serve_wrapper(self.logical_device, host, port, self.faults,
                                           on_connections=self._count_connections)
        self._log(DcEvent.POWER_UP, self.now())
        if schedule:
            self._schedule = asyncio.create_task(self._run_schedule(), name=f"dc-{self.config.id}-reads")

    def _count_connections(self, open_now: int) -> None:
        self.connections = open_now
        self.peak_connections = max(self.peak_connections, open_now)

    async def stop(self) -> None:
        """Stop reading, stop listening, drop open connections (their sessions closed)."""
        task, self._schedule = self._schedule, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            server.close()
            close_connections(server)
            await server.wait_closed()
            await asyncio.sleep(0)

