"""A small async test client: our ClientAssociation over the wrapper or HDLC on a loopback TCP socket.

Tests (and the other simulator tests) use it to read simulated meters and concentrators the way
a head-end would: one request at a time, each read bounded by ``timeout`` wall seconds. Over
HDLC a silent peer is polled (RR) up to ``retries`` times before ``ReadTimeout``, which is how a
discarded frame (bad FCS, truncated) is recovered. Every link and association event seen is kept
in ``events`` so a test can show what happened on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from protocols.association import (
    ActionResult,
    Associated,
    AssociationRejected,
    ClientAssociation,
    ClientConfig,
    ConfirmedServiceErrorReceived,
    Event,
    ExceptionReceived,
    GetResult,
    GetWithListResult,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SetResult,
)
from protocols.axdr import Data, decode_data_exact, encode_data
from protocols.errors import ConnectionLost, ConnectTimeout, DlmsError, ReadTimeout, ServiceError, StateError
from protocols.hdlc import (
    ApduReceived as HdlcApduReceived,
)
from protocols.hdlc import (
    Disconnected,
    HdlcConnection,
    HdlcEvent,
    HdlcParameters,
    HdlcState,
    Role,
    client_address,
    server_address,
)
from protocols.obis import ObisCode
from protocols.wrapper import ApduReceived, ConnectionClosed, WrapperConnection, WrapperError, WrapperEvent
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)

__all__ = ["HdlcTarget", "NetClient"]

_TERMINAL = (
    Associated,
    AssociationRejected,
    Released,
    GetResult,
    GetWithListResult,
    SetResult,
    ActionResult,
    ExceptionReceived,
    ConfirmedServiceErrorReceived,
    SecurityFailure,
    RemoteProtocolError,
)
_READ_CHUNK = 4096


@dataclass(frozen=True)
class HdlcTarget:
    """Where an HDLC client sends: its own SAP and the server's logical and physical addresses."""

    client_sap: int = 1
    logical: int = 1
    physical: int | None = 0x11
    address_size: int = 4
    parameters: HdlcParameters = field(
        default_factory=lambda: HdlcParameters(max_info_tx=512, max_info_rx=512, window_tx=1, window_rx=1))


class NetClient:
    """One association over one TCP connection; build it with ``open_wrapper()`` or ``open_hdlc()``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: ClientConfig,
        *,
        timeout: float,
        retries: int,
        wrapper: WrapperConnection | None = None,
        hdlc: HdlcTarget | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.config = config
        self.association = ClientAssociation(config)
        self.timeout = timeout
        self.retries = retries
        self.wrapper = wrapper
        self.target = hdlc
        self.link: HdlcConnection | None = None
        #: Every event seen, link events (FrameDiscarded...) and association events, in order.
        self.events: list[object] = []
        #: RR polls (or repeated SNRMs) sent after a read timed out.
        self.polls = 0
        self._queued: list[Event] = []
        self._disconnecting = False

    # --- opening -----------------------------------------------------------------------------

    @staticmethod
    async def _open(host: str, port: int, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(host, port)
        except TimeoutError as exc:
            raise ConnectTimeout(f"no TCP connection to {host}:{port} within {timeout} s") from exc
        except OSError as exc:
            raise ConnectionLost(f"TCP connection to {host}:{port} failed: {exc}") from exc

    @classmethod
    async def open_wrapper(
        cls, host: str, port: int, config: ClientConfig, *, client_sap: int = 1, server_sap: int = 1,
        timeout: float = 5.0,
    ) -> NetClient:
        reader, writer = await cls._open(host, port, timeout)
        return cls(reader, writer, config, timeout=timeout, retries=0,
                   wrapper=WrapperConnection(local_port=client_sap, remote_port=server_sap))

    @classmethod
    async def open_hdlc(
        cls, host: str, port: int, config: ClientConfig, *, target: HdlcTarget | None = None,
        timeout: float = 2.0, retries: int = 3,
    ) -> NetClient:
        """Open TCP and the HDLC link (SNRM/UA, repeated on timeout)."""
        reader, writer = await cls._open(host, port, timeout)
        client = cls(reader, writer, config, timeout=timeout, retries=retries, hdlc=target or HdlcTarget())
        try:
            await client._connect_link()
        except DlmsError:
            await client.close()
            raise
        return client

    def _new_link(self) -> HdlcConnection:
        target = self.target
        assert target is not None
        physical = target.physical if target.address_size != 1 else None
        return HdlcConnection(
            Role.CLIENT,
            server_address=server_address(target.logical, physical, target.address_size),
            client_address=client_address(target.client_sap),
            parameters=target.parameters,
        )

    async def _connect_link(self) -> None:
        for attempt in range(self.retries + 1):
            # A client cannot repeat SNRM while awaiting UA (no such transition), so a lost UA
            # is recovered with a fresh link object.
            self.link = self._new_link()
            self.link.connect()
            await self._write(self.link.data_to_send())
            if attempt:
                self.polls += 1
            try:
                while self.link.state is not HdlcState.CONNECTED:
                    self._feed(await self._read())
                    if self.link.state is HdlcState.DISCONNECTED:
                        raise ConnectionLost("the meter refused the HDLC link (DM)")
                return
            except ReadTimeout:
                continue
        raise ReadTimeout(f"no UA after {self.retries + 1} SNRM")

    async def relink(self, target: HdlcTarget, config: ClientConfig | None = None) -> None:
        """HDLC: DISC this link, then SNRM as ``target`` on the same TCP connection, with a fresh association."""
        if self.link is None:
            raise StateError("relink is for HDLC links")
        if self.link.state is HdlcState.CONNECTED:
            self.link.disconnect()
            await self._write(self.link.data_to_send())
            self._disconnecting = True
            try:
                while _state(self.link) is not HdlcState.DISCONNECTED:
                    self._feed(await self._read())
            finally:
                self._disconnecting = False
        self.target = target
        self.config = config or self.config
        self.association = ClientAssociation(self.config)
        self._queued = []
        await self._connect_link()

    # --- I/O -----------------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"write failed: {exc}") from exc

    async def _read(self) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                data = await self.reader.read(_READ_CHUNK)
        except TimeoutError as exc:
            raise ReadTimeout(f"no answer within {self.timeout} s") from exc
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"read failed: {exc}") from exc
        if not data:
            raise ConnectionLost("the peer closed the connection")
        return data

    def _feed(self, data: bytes) -> None:
        link_events: list[WrapperEvent] | list[HdlcEvent]
        if self.wrapper is not None:
            link_events = self.wrapper.receive_data(data)
        else:
            assert self.link is not None
            link_events = self.link.receive_data(data)
        for event in link_events:
            self.events.append(event)
            if isinstance(event, ApduReceived | HdlcApduReceived):
                got = self.association.receive_apdu(event.apdu)
                self.events.extend(got)
                self._queued.extend(got)
            elif isinstance(event, WrapperError):
                raise ConnectionLost(f"wrapper stream broken: {event.reason}")
            elif isinstance(event, ConnectionClosed):
                raise ConnectionLost("the peer closed the connection")
            elif isinstance(event, Disconnected) and not self._disconnecting:
                raise ConnectionLost(f"HDLC link down: {event.reason}")

    async def _flush(self) -> None:
        apdus = self.association.data_to_send()
        if self.wrapper is not None:
            for apdu in apdus:
                self.wrapper.send_apdu(apdu)
            await self._write(self.wrapper.data_to_send())
            return
        assert self.link is not None
        for apdu in apdus:
            self.link.send_apdu(apdu)
        await self._write(self.link.data_to_send())

    async def exchange(self) -> Event:
        """Send what the association queued and read until it gives a result event."""
        polls = 0
        while True:
            await self._flush()
            for index, event in enumerate(self._queued):
                if isinstance(event, _TERMINAL):
                    self._queued = self._queued[index + 1:]
                    return event
            try:
                data = await self._read()
            except ReadTimeout:
                if self.link is None or polls >= self.retries or self.link.state is not HdlcState.CONNECTED:
                    raise
                # Ask the meter to repeat what we did not get (HDLC go-back on a poll).
                polls += 1
                self.polls += 1
                self.link.poll()
                await self._write(self.link.data_to_send())
                continue
            self._feed(data)

    # --- services ------------------------------------------------------------------------------

    async def associate(self) -> Associated:
        self.association.associate()
        event = await self.exchange()
        if not isinstance(event, Associated):
            raise _as_error(event, "association")
        return event

    async def get(
        self, class_id: int, obis: ObisCode, attribute: int, selection: SelectiveAccessDescriptor | None = None
    ) -> bytes:
        """The attribute's encoded ``Data``; a refusal raises ``ServiceError`` with its code."""
        self.association.get(CosemAttributeDescriptor(class_id, obis, attribute), selection)
        event = await self.exchange()
        if isinstance(event, GetResult):
            if isinstance(event.data, DataAccessResult):
                raise ServiceError(f"GET {obis} attribute {attribute}: {event.data.name.lower()}", int(event.data),
                                   retryable=event.data is DataAccessResult.TEMPORARY_FAILURE)
            return event.data
        raise _as_error(event, f"GET {obis}")

    async def get_data(
        self, class_id: int, obis: ObisCode, attribute: int, selection: SelectiveAccessDescriptor | None = None
    ) -> Data:
        return decode_data_exact(await self.get(class_id, obis, attribute, selection))

    async def set(self, class_id: int, obis: ObisCode, attribute: int, value: Data) -> DataAccessResult:
        """SET ``value``; the server's answer (SUCCESS or why not)."""
        self.association.set(CosemAttributeDescriptor(class_id, obis, attribute), encode_data(value))
        event = await self.exchange()
        if isinstance(event, SetResult):
            return event.result
        raise _as_error(event, f"SET {obis}")

    async def action(self, class_id: int, obis: ObisCode, method: int, parameters: bytes | None = None) -> ActionResult:
        self.association.action(CosemMethodDescriptor(class_id, obis, method), parameters)
        event = await self.exchange()
        if isinstance(event, ActionResult):
            return event
        raise _as_error(event, f"ACTION {obis}")

    async def release(self) -> None:
        self.association.release()
        event = await self.exchange()
        if not isinstance(event, Released):
            raise _as_error(event, "release")

    async def close(self) -> None:
        """Disconnect the HDLC link (best effort) and close the socket."""
        if self.link is not None and self.link.state is HdlcState.CONNECTED:
            self.link.disconnect()
            with contextlib.suppress(DlmsError):
                await self._write(self.link.data_to_send())
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> NetClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


def _state(link: HdlcConnection) -> HdlcState:
    # A call, so that the type checker does not keep a state narrowed before an await.
    return link.state


def _as_error(event: Event, what: str) -> DlmsError:
    """The typed error for an event that is not the awaited result."""
    if isinstance(event, ExceptionReceived):
        return event.exception.to_error()
    if isinstance(event, SecurityFailure):
        return event.error
    if isinstance(event, RemoteProtocolError):
        return event.error
    if isinstance(event, AssociationRejected):
        return ServiceError(f"{what}: association rejected ({event.result.name.lower()}, diagnostic "
                            f"{event.diagnostic})", event.diagnostic)
    if isinstance(event, ConfirmedServiceErrorReceived):
        return ServiceError(f"{what}: confirmed service error {event.error}")
    return ServiceError(f"{what}: unexpected {type(event).__name__}")
