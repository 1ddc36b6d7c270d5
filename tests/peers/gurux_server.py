"""A meter built on gurux-dlms 1.0.203's own server (test-only peer): its object model, its bytes, our client.

``GuruxMeter`` serves one TCP port on 127.0.0.1 from a thread, with the wrapper or HDLC, and answers
with ``GXDLMSServer``: every byte on the wire is written by gurux. A fresh gurux server per connection
holds the objects of ``meter_objects``: the clock, the serial, the registers of the default device
type, a load profile, daily values and the three event logs, each value computed from ``epoch`` by the
functions here, so that a test can say what a read must give. ``authentication`` is ``none`` (public
client) or ``lls`` (password ``LLS_PASSWORD``).

gurux 1.0.203's Python server cannot serve as shipped; the shims in ``tests.peers.gurux_peer`` and the
few methods below (each says which lookup fails without it) make it answer; none changes an answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from gurux_dlms import GXCiphering, GXDateTime, GXDLMSServer
from gurux_dlms.enums import Authentication, DataType, InterfaceType, Security, Unit
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.ValueEventArgs import ValueEventArgs

from protocols.cosem_datetime import CosemDateTime
from tests.peers.gurux_peer import _HdlcSettings, _HdlcSetup, _Reply

# GXDLMSProfileGeneric asks its ValueEventArgs for getRowEndIndex()/getRowBeginIndex(), which 1.0.203's
# ValueEventArgs has only as attributes: a selective read of any profile fails without these two.
if not hasattr(ValueEventArgs, "getRowEndIndex"):
    ValueEventArgs.getRowEndIndex = lambda self: self.rowEndIndex
    ValueEventArgs.getRowBeginIndex = lambda self: self.rowBeginIndex

__all__ = ["LLS_PASSWORD", "REGISTERS", "GuruxMeter", "daily_rows", "event_rows", "meter_objects", "profile_rows"]

LLS_PASSWORD = b"gurux-12"
#: The meter's system title and its global keys (HLS-GMAC, suite 0).
SYSTEM_TITLE = b"GRX\x00\x00\x00\x00\x01"
EK = bytes(range(0x00, 0x10))
AK = bytes(range(0xD0, 0xE0))
SERIAL = "GRX0000000001"
#: (OBIS, scaler, unit, value at the epoch): the default device type's registers.
REGISTERS: tuple[tuple[str, int, int, int], ...] = (
    ("1.0.1.8.0.255", 0, int(Unit.ACTIVE_ENERGY), 1_234_567),
    ("1.0.1.8.1.255", 0, int(Unit.ACTIVE_ENERGY), 734_567),
    ("1.0.1.8.2.255", 0, int(Unit.ACTIVE_ENERGY), 500_000),
    ("1.0.2.8.0.255", 0, int(Unit.ACTIVE_ENERGY), 45_678),
    ("1.0.32.7.0.255", -1, int(Unit.VOLTAGE), 2_301),
)
_PERIOD = dt.timedelta(minutes=15)
_DAY = dt.timedelta(days=1)
#: The event logs of the default device type and the codes each holds (IDIS codes of its table).
_LOGS = {"0.0.99.98.0.255": (1, 2, 3), "0.0.99.98.1.255": (40, 44), "0.0.99.98.2.255": (59, 60)}


def _at(moment: dt.datetime) -> GXDateTime:
    return GXDateTime(moment.astimezone(dt.UTC))


def profile_rows(epoch: dt.datetime) -> list[tuple[dt.datetime, int, int, int]]:
    """The load profile: (end of interval, status, A+ Wh, A- Wh) every 15 min over the two days before ``epoch``."""
    start = epoch.replace(minute=epoch.minute - epoch.minute % 15, second=0, microsecond=0) - 2 * _DAY
    rows = []
    for n in range(2 * 96 + 1):
        rows.append((start + n * _PERIOD, 0, 1_000_000 + 37 * n + (n * n) % 11, 40_000 + 3 * n))
    return rows


def daily_rows(epoch: dt.datetime) -> list[tuple[dt.datetime, int, int, int, int]]:
    """Daily values: (midnight UTC, A+, A+ T1, A+ T2, A-) for the three midnights before ``epoch``."""
    midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
    return [(midnight - k * _DAY, 1_200_000 - 9_000 * k, 700_000 - 5_000 * k, 500_000 - 4_000 * k, 45_000 - 100 * k)
            for k in (2, 1, 0)]


def event_rows(epoch: dt.datetime) -> dict[str, list[tuple[dt.datetime, int]]]:
    """Each event log's rows: (time, code), a few per log over the day before ``epoch``."""
    out: dict[str, list[tuple[dt.datetime, int]]] = {}
    for index, (log, codes) in enumerate(_LOGS.items()):
        out[log] = [(epoch - _DAY + dt.timedelta(hours=2 + 5 * k + index, minutes=7 * k), code)
                    for k, code in enumerate(codes)]
    return out


def _register(obis: str, scaler: int, unit: int, value: int) -> GXDLMSRegister:
    register = GXDLMSRegister(obis)
    # gurux holds the scaler as the multiplier (0.1 for -1) and writes its log10 on the wire.
    register.scaler, register.unit, register.value = 10.0 ** scaler, unit, value
    register.setDataType(2, DataType.UINT32 if value >= 0 else DataType.INT32)
    return register


class _Profile(GXDLMSProfileGeneric):  # type: ignore[misc]
    """gurux's profile generic, with the selection by range done here.

    1.0.203's own selection cannot serve a range read: it takes the empty list of selected columns
    for column entries and compares a datetime with 0. The rows it selects are still written by
    gurux's ``getData``, so every byte of the answer is gurux's encoding.
    """

    def getValue(self, settings: Any, e: Any) -> Any:
        if e.index == 2 and e.selector == 1 and e.parameters is not None and not e.rowEndIndex:
            # gurux's parse of the range structure misplaces its members (None among them): the two
            # 12-byte date-times in it are the range, in order.
            stamps = [CosemDateTime.decode(bytes(p)).to_datetime() for p in e.parameters[1:]
                      if isinstance(p, bytes | bytearray) and len(p) == 12]
            if len(stamps) != 2 or None in stamps:
                raise ValueError(f"range access without two date-times: {e.parameters!r}")
            start, end = stamps
            assert start is not None and end is not None
            table = [row for row in self.buffer if start <= row[0].value.astimezone(dt.UTC) <= end]
            return self.getData(settings, e, table, None)
        return super().getValue(settings, e)


def _profile(obis: str, columns: list[tuple[Any, int]], period: int, rows: list[list[Any]]) -> GXDLMSProfileGeneric:
    profile = _Profile(obis)
    for target, attribute in columns:
        profile.addCaptureObject(target, attribute, 0)
    profile.capturePeriod = period
    profile.buffer = rows
    profile.entriesInUse = profile.profileEntries = len(rows)
    return profile


def meter_objects(epoch: dt.datetime) -> list[Any]:
    """The meter's objects as gurux holds them, every value computed from ``epoch``."""
    clock = GXDLMSClock()
    clock.time = _at(epoch)
    clock.timeZone = 0
    serial = GXDLMSData("0.0.96.1.0.255")
    serial.value = SERIAL.encode("ascii")
    serial.setDataType(2, DataType.OCTET_STRING)
    registers = {obis: _register(obis, scaler, unit, value) for obis, scaler, unit, value in REGISTERS}
    status = GXDLMSData("0.0.96.10.1.255")
    status.value = 0
    status.setDataType(2, DataType.UINT8)
    load = _profile("1.0.99.1.0.255", [(clock, 2), (status, 2), (registers["1.0.1.8.0.255"], 2),
                                       (registers["1.0.2.8.0.255"], 2)], 900,
                    [[_at(t), s, a, b] for t, s, a, b in profile_rows(epoch)])
    daily = _profile("1.0.98.1.0.255", [(clock, 2)] + [(registers[o], 2) for o in
                                                        ("1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255",
                                                         "1.0.2.8.0.255")], 86400,
                     [[_at(t), *values] for t, *values in daily_rows(epoch)])
    logs = []
    for log, rows in event_rows(epoch).items():
        code = GXDLMSData(f"0.0.96.11.{log.split('.')[4]}.255")
        code.value = 0
        code.setDataType(2, DataType.UINT8)
        logs.append(code)
        logs.append(_profile(log, [(clock, 2), (code, 2)], 0, [[_at(t), c] for t, c in rows]))
    relay = GXDLMSDisconnectControl("0.0.96.3.10.255")
    return [clock, serial, *registers.values(), status, load, daily, *logs, relay]


class _Answer(_Reply):
    # handleAarqRequest calls sr.getConnectionInfo(), which 1.0.203's GXServerReply does not have.
    def getConnectionInfo(self) -> Any:
        return self.connectionInfo


class _Server(GXDLMSServer):  # type: ignore[misc]
    """One gurux server: logical names, the meter's objects, the authentication asked for."""

    def __init__(self, interface: Literal["wrapper", "hdlc"], authentication: Literal["none", "lls", "hls-gmac"],
                 objects: list[Any]) -> None:
        super().__init__(True, InterfaceType.HDLC if interface == "hdlc" else InterfaceType.WRAPPER)
        association = GXDLMSAssociationLogicalName()
        if authentication == "lls":
            association.authenticationMechanismName.mechanismId = Authentication.LOW
            association.secret = LLS_PASSWORD
        elif authentication == "hls-gmac":
            association.authenticationMechanismName.mechanismId = Authentication.HIGH_GMAC
            # GXDLMSSecureServer sets settings.ciphering, but the server reads settings.cipher: set that.
            cipher = GXCiphering(bytearray(SYSTEM_TITLE))
            cipher.security = Security.AUTHENTICATION_ENCRYPTION
            cipher.blockCipherKey, cipher.authenticationKey = bytearray(EK), bytearray(AK)
            self.settings.cipher = cipher
        # initialize() appends the whole collection to an empty object list, which gurux refuses.
        association.objectList.append(association)
        for item in objects:
            association.objectList.append(item)
        self.items.append(association)
        for item in objects:
            self.items.append(item)
        self._authentication = authentication
        if interface == "hdlc":
            self.hdlc = _HdlcSetup()
            # gurux's handleRequest reads an inactivity timeout as a timedelta's int(): 0 skips that code.
            self.hdlc.inactivityTimeout = 0
            self.settings.hdlc = _HdlcSettings(self.hdlc)
        self.initialize()

    # Called by gurux's command handlers but not defined in 1.0.203's GXDLMSServer.
    def notifyRead(self, *_args: Any) -> None: ...
    def notifyConnected(self, *_args: Any) -> None: ...
    def getTransaction(self) -> Any:
        return self.transaction

    def setTransaction(self, value: Any) -> None:
        self.transaction = value

    def isTarget(self, _server: int, _client: int) -> bool:
        return True

    def onValidateAuthentication(self, authentication: Any, password: Any) -> int:
        # SourceDiagnostic: 0 none, 13 authentication failure.
        if self._authentication == "lls":
            return 0 if bytes(password or b"") == LLS_PASSWORD else 13
        return 0

    def onGetAttributeAccess(self, _args: Any) -> int:
        return 3  # read and write

    def onGetMethodAccess(self, _args: Any) -> int:
        return 1

    def onPreGet(self, _args: Any) -> None: ...
    def onPostGet(self, _args: Any) -> None: ...
    def onFindObject(self, *_args: Any) -> None: ...
    def onPreRead(self, *_args: Any) -> None: ...
    def onPostRead(self, *_args: Any) -> None: ...
    def onPreWrite(self, *_args: Any) -> None: ...
    def onPostWrite(self, *_args: Any) -> None: ...
    def onConnected(self, _info: Any) -> None: ...
    def onInvalidConnection(self, _info: Any) -> None: ...
    def onDisconnected(self, _info: Any) -> None: ...
    def onPreAction(self, *_args: Any) -> None: ...
    def onPostAction(self, *_args: Any) -> None: ...


@dataclass
class GuruxMeter:
    """A gurux meter on 127.0.0.1: ``with GuruxMeter(...) as meter: meter.port``."""

    epoch: dt.datetime
    interface: Literal["wrapper", "hdlc"] = "wrapper"
    authentication: Literal["none", "lls", "hls-gmac"] = "none"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"gurux-meter-{self.port}", daemon=True)
        #: Errors gurux raised while answering (a test asserts there were none).
        self.errors: list[str] = []
        #: Every (request bytes, answer bytes) of every connection, in order (for failure messages).
        self.trace: list[tuple[bytes, bytes]] = []

    def __enter__(self) -> GuruxMeter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                self._session(connection)

    def _session(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        server = _Server(self.interface, self.authentication, meter_objects(self.epoch))
        idle = 0.0
        while not self._stop.is_set() and idle < self.timeout:
            try:
                data = connection.recv(4096)
            except TimeoutError:
                idle += 0.2
                continue
            except OSError:
                return
            if not data:
                return
            idle = 0.0
            reply = _Answer(data)
            try:
                server.handleRequest(reply)
            except Exception as exc:  # gurux's own defect: recorded (with where), the connection dropped
                where = traceback.extract_tb(exc.__traceback__)[-7:]
                self.errors.append(f"{type(exc).__name__}: {exc} at "
                                   + " < ".join(f"{f.name}:{f.lineno}" for f in reversed(where))
                                   + f" (request {data.hex()})")
                return
            self.trace.append((data, bytes(reply.reply or b"")))
            if reply.reply:
                with contextlib.suppress(OSError):
                    connection.sendall(bytes(reply.reply))


@contextlib.contextmanager
def gurux_meter(epoch: dt.datetime, **options: Any) -> Iterator[GuruxMeter]:
    with GuruxMeter(epoch, **options) as meter:
        yield meter

