"""Sans-IO HDLC link (IEC 62056-46) for the client (primary) and server (secondary) stations.

Bytes in through ``receive_data``, events out; frames to send through ``data_to_send``. The
connection answers the link-level frames itself (RR for segments, UA/DM for SNRM/DISC), the way
h2 answers PING, so that the transport only moves bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from protocols.errors import StateError
from protocols.hdlc.frame import (
    FLAG,
    LLC_COMMAND,
    LLC_RESPONSE,
    FrameDecodeError,
    FrameType,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    header_plausible,
    parse_frame,
)

__all__ = [
    "ApduReceived",
    "Connected",
    "Disconnected",
    "FrameDiscarded",
    "FrameRejected",
    "HdlcConnection",
    "HdlcEvent",
    "HdlcState",
    "LocalAction",
    "PeerBusy",
    "Role",
    "TRANSITIONS",
    "UnexpectedFrame",
]


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class HdlcState(Enum):
    DISCONNECTED = "disconnected"  # NDM
    AWAITING_CONNECTION = "awaiting-connection"  # client sent SNRM
    CONNECTED = "connected"  # NRM
    AWAITING_DISCONNECTION = "awaiting-disconnection"  # client sent DISC
    CLOSED = "closed"  # the byte stream ended


class LocalAction(Enum):
    """What the owner of the connection asks for; keys of the transition table next to frame types."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    SEND_APDU = "send-apdu"
    POLL = "poll"


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up; ``parameters`` are the negotiated ones, from this station's point of view.

    ``notes`` say what was odd in the peer's parameter field (read leniently; empty when it was sound).
    """

    parameters: HdlcParameters
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """A whole APDU (segments reassembled, LLC header removed)."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class FrameDiscarded:
    """Bytes that did not make a valid frame were dropped; ``offset`` counts from the stream's start."""

    reason: str
    offset: int


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The peer sent FRMR; ``information`` is its reject information field."""

    information: bytes


@dataclass(frozen=True, slots=True)
class UnexpectedFrame:
    """A valid frame that the current state does not allow; it was ignored."""

    frame_type: FrameType
    state: HdlcState


@dataclass(frozen=True, slots=True)
class PeerBusy:
    """The peer sent RNR: nothing more is sent until it sends RR."""


HdlcEvent = (
    Connected | ApduReceived | Disconnected | FrameDiscarded | FrameRejected | UnexpectedFrame | PeerBusy
)

_C, _S = Role.CLIENT, Role.SERVER
_D, _AC, _CO, _AD = (HdlcState.DISCONNECTED, HdlcState.AWAITING_CONNECTION, HdlcState.CONNECTED,
                     HdlcState.AWAITING_DISCONNECTION)
_T = FrameType
_L = LocalAction

#: Every transition of the link: (role, state, frame type or local action) -> handler name.
#: Frames not listed give an ``UnexpectedFrame`` event; local actions not listed raise ``StateError``.
TRANSITIONS: dict[tuple[Role, HdlcState, FrameType | LocalAction], str] = {
    # client (primary station)
    (_C, _D, _L.CONNECT): "_send_snrm",
    # A lost SNRM or UA (common on PLC): the transport's timer repeats the SNRM, or the DISC.
    (_C, _AC, _L.CONNECT): "_send_snrm",
    (_C, _AD, _L.DISCONNECT): "_send_disc",
    (_C, _AC, _T.UA): "_client_connected",
    (_C, _AC, _T.DM): "_refused",
    (_C, _AC, _T.FRMR): "_rejected",
    (_C, _CO, _T.I): "_receive_i",
    (_C, _CO, _T.RR): "_receive_rr",
    (_C, _CO, _T.RNR): "_receive_rnr",
    (_C, _CO, _T.UI): "_receive_ui",
    (_C, _CO, _T.DM): "_peer_disconnected",
    (_C, _CO, _T.FRMR): "_rejected",
    (_C, _CO, _L.SEND_APDU): "_queue_apdu",
    (_C, _CO, _L.POLL): "_send_poll",
    (_C, _CO, _L.DISCONNECT): "_send_disc",
    (_C, _CO, _L.CONNECT): "_send_snrm",
    (_C, _AD, _T.UA): "_disconnect_confirmed",
    (_C, _AD, _T.DM): "_disconnect_confirmed",
    (_C, _AD, _T.FRMR): "_disconnect_confirmed",
    (_C, _AD, _T.I): "_ignore",
    (_C, _AD, _T.RR): "_ignore",
    (_C, _D, _T.UI): "_receive_ui",
    (_C, _D, _T.DM): "_ignore",
    # server (secondary station)
    (_S, _D, _T.SNRM): "_server_connect",
    (_S, _D, _T.DISC): "_answer_dm",
    (_S, _D, _T.I): "_answer_dm",
    (_S, _D, _T.RR): "_answer_dm",
    (_S, _D, _T.RNR): "_answer_dm",
    (_S, _D, _T.UI): "_receive_ui",
    (_S, _CO, _T.SNRM): "_server_connect",
    (_S, _CO, _T.DISC): "_server_disconnect",
    (_S, _CO, _T.I): "_receive_i",
    (_S, _CO, _T.RR): "_receive_rr",
    (_S, _CO, _T.RNR): "_receive_rnr",
    (_S, _CO, _T.UI): "_receive_ui",
    (_S, _CO, _L.SEND_APDU): "_queue_apdu",
    (_S, _CO, _L.DISCONNECT): "_server_drop",
}

# Keep at most this many consumed bytes in front of the buffer before compacting it.
_COMPACT_AT = 4096


class HdlcConnection:
    """One HDLC link between a client and a server station.

    ``client_address``/``server_address`` name both ends. A server built with ``client_address=None``
    accepts the first client that sends SNRM and serves it until DISC. ``parameters`` are what this
    station proposes (client) or can do (server); the negotiated values are the minimum of both sides.
    """

    def __init__(
        self,
        role: Role,
        *,
        server_address: HdlcAddress,
        client_address: HdlcAddress | None = None,
        parameters: HdlcParameters | None = None,
    ) -> None:
        if role is Role.CLIENT and client_address is None:
            raise StateError("a client connection needs its client address")
        self.role = role
        self.state = HdlcState.DISCONNECTED
        self.server_address = server_address
        self.client_address = client_address
        self._bound_client = client_address
        self._client = client_address or server_address  # own address when in the client role
        self.proposed = parameters or HdlcParameters()
        self.parameters = HdlcParameters()
        self._buffer = bytearray()
        self._pos = 0
        self._consumed = 0  # bytes dropped from the buffer's front, for stream offsets
        self._hunting = False
        self._outgoing = bytearray()
        self._events: list[HdlcEvent] = []
        self._reset_link()

    # ----------------------------------------------------------------- public API

    def connect(self) -> None:
        """Client: send SNRM (with parameters unless all are the defaults)."""
        self._local(LocalAction.CONNECT, b"")

    def disconnect(self) -> None:
        """Client: send DISC. Server: drop the link; the next frame from the client gets DM."""
        self._local(LocalAction.DISCONNECT, b"")

    def send_apdu(self, apdu: bytes) -> None:
        """Queue an APDU; it is sent (segmented if needed) as the link allows."""
        self._local(LocalAction.SEND_APDU, apdu)

    def poll(self) -> None:
        """Client: send RR with the poll bit (after a timeout, or to see whether a busy peer recovered)."""
        self._local(LocalAction.POLL, b"")

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer since the last call."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: bytes) -> list[HdlcEvent]:
        """Feed bytes from the peer; returns the events they complete. ``b""`` means the peer closed."""
        if self.state is HdlcState.CLOSED:
            if data:
                raise StateError("receive_data after the stream was closed")
            return []
        if not data:
            return self._close()
        self._buffer += data
        self._parse_buffer()
        events, self._events = self._events, []
        return events

    @property
    def peer_address(self) -> HdlcAddress | None:
        """The client address this link is bound to (a server learns it from the first SNRM)."""
        return self._bound_client if self.role is Role.SERVER else self.server_address

    @property
    def is_idle(self) -> bool:
        """No I-frame is left to send (the last ones may await acknowledgement by the next request)."""
        return not self._tx_queue

    # ----------------------------------------------------------------- framing

    def _parse_buffer(self) -> None:
        buf = self._buffer
        while True:
            pos = self._pos
            # Skip extra flags (two flags between frames, or idle flags) but keep the last one: it opens
            # the next frame, and after a frame the shared closing flag is left in place for that.
            while pos + 1 < len(buf) and buf[pos] == FLAG and buf[pos + 1] == FLAG:
                pos += 1
            self._pos = pos
            if pos >= len(buf):
                break
            if buf[pos] != FLAG:
                nxt = buf.find(FLAG, pos)
                end = len(buf) if nxt < 0 else nxt
                self._discard(f"{end - pos} byte(s) outside any frame", pos)
                self._pos = end
                continue
            if self._hunting:
                plausible = header_plausible(buf, pos)
                if plausible is None:
                    break
                if not plausible:
                    self._skip_to_next_flag(pos)
                    continue
            try:
                result = parse_frame(buf, pos)
            except FrameDecodeError as exc:
                self._discard(str(exc), pos)
                if exc.end is not None:
                    # Checksums passed, so the frame's extent is sure: keep its closing flag for the next.
                    self._pos = exc.end - 1
                    self._hunting = False
                else:
                    self._hunting = True
                    self._skip_to_next_flag(pos)
                continue
            if result is None:
                break
            frame, end = result
            self._hunting = False
            self._pos = end - 1
            self._handle_frame(frame, pos)
        if self._pos > _COMPACT_AT:
            del buf[:self._pos]
            self._consumed += self._pos
            self._pos = 0

    def _skip_to_next_flag(self, pos: int) -> None:
        nxt = self._buffer.find(FLAG, pos + 1)
        self._pos = len(self._buffer) if nxt < 0 else nxt

    def _discard(self, reason: str, pos: int) -> None:
        # While hunting after a bad frame, stray bytes are part of the same loss: report it once.
        if not self._hunting:
            self._events.append(FrameDiscarded(reason, self._consumed + pos))
        self._hunting = True

    def _close(self) -> list[HdlcEvent]:
        rest = self._buffer[self._pos:]
        if rest.strip(b"\x7e"):
            self._events.append(FrameDiscarded("stream closed inside a frame", self._consumed + self._pos))
        self._buffer.clear()
        self._pos = 0
        was = self.state
        self.state = HdlcState.CLOSED
        self._reset_link()
        if was is not HdlcState.DISCONNECTED:
            self._events.append(Disconnected("stream closed by the peer"))
        events, self._events = self._events, []
        return events

    # ----------------------------------------------------------------- dispatch

    def _handle_frame(self, frame: HdlcFrame, pos: int) -> None:
        if not self._addressed_to_us(frame):
            self._events.append(FrameDiscarded(
                f"{frame.frame_type.name} frame for {frame.destination} from {frame.source} not for us",
                self._consumed + pos))
            return
        handler = TRANSITIONS.get((self.role, self.state, frame.frame_type))
        if handler is None:
            self._events.append(UnexpectedFrame(frame.frame_type, self.state))
            return
        method: Callable[[HdlcFrame], None] = getattr(self, handler)
        method(frame)

    def _local(self, action: LocalAction, apdu: bytes) -> None:
        handler = TRANSITIONS.get((self.role, self.state, action))
        if handler is None:
            raise StateError(f"{self.role.value} cannot {action.value} in state {self.state.value}")
        method: Callable[[bytes], None] = getattr(self, handler)
        method(apdu)

    def _addressed_to_us(self, frame: HdlcFrame) -> bool:
        if self.role is Role.CLIENT:
            return frame.destination == self.client_address and frame.source == self.server_address
        if frame.destination != self.server_address:
            return False
        # Another client's SNRM takes the link over only while it is down (one association per link).
        return (self._bound_client is None or frame.source == self._bound_client
                or (frame.frame_type is FrameType.SNRM and self.state is HdlcState.DISCONNECTED
                    and self.client_address is None))

    # ----------------------------------------------------------------- sending frames

    def _send(self, frame_type: FrameType, information: bytes = b"", *, poll_final: bool = True,
              ns: int = 0, segmented: bool = False, to: HdlcAddress | None = None) -> None:
        peer: HdlcAddress | None
        if self.role is Role.CLIENT:
            me, peer = self._client, self.server_address
        else:
            me, peer = self.server_address, to or self._bound_client
        if peer is None:
            raise StateError("no client is bound to this server link")
        frame = HdlcFrame(frame_type, peer, me, information, poll_final, ns, self._vr, segmented)
        self._outgoing += frame.encode()
        if poll_final:
            self._holds_poll = False

    def _reset_link(self) -> None:
        self._vs = 0  # V(S): N(S) of the next new I-frame
        self._vr = 0  # V(R): N(S) expected from the peer
        self._tx_queue: deque[tuple[bytes, bool]] = deque()  # (information, segmented) not yet sent
        self._unacked: deque[tuple[int, bytes, bool]] = deque()  # (N(S), information, segmented)
        self._rx_parts: list[bytes] = []
        self._peer_busy = False
        # NRM: a station may send only while it holds the poll (client) or was polled (server).
        self._holds_poll = self.role is Role.CLIENT

    def _pump(self) -> None:
        """Send queued I-frames while the poll, the window and the peer allow."""
        while (self._holds_poll and self._tx_queue and not self._peer_busy
               and len(self._unacked) < self.parameters.window_tx):
            info, segmented = self._tx_queue.popleft()
            last_in_window = (not self._tx_queue or len(self._unacked) + 1 >= self.parameters.window_tx)
            ns = self._vs
            self._unacked.append((ns, info, segmented))
            self._vs = (self._vs + 1) % 8
            self._send(FrameType.I, info, poll_final=last_in_window, ns=ns, segmented=segmented)

    def _queue_apdu(self, apdu: bytes) -> None:
        llc = LLC_COMMAND if self.role is Role.CLIENT else LLC_RESPONSE
        data = llc + apdu
        size = self.parameters.max_info_tx
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        for index, chunk in enumerate(chunks):
            self._tx_queue.append((chunk, index < len(chunks) - 1))
        self._pump()

    def _acknowledge(self, nr: int) -> bool:
        """Apply the peer's N(R); False (and nothing changed) if it acknowledges frames never sent."""
        outstanding = [ns for ns, _, _ in self._unacked]
        if nr != self._vs and nr not in outstanding:
            return False
        while self._unacked and self._unacked[0][0] != nr:
            self._unacked.popleft()
        return True

    def _go_back(self) -> None:
        """Requeue frames the peer did not take (it answered with an older N(R)) for resending."""
        while self._unacked:
            ns, info, segmented = self._unacked.pop()
            self._tx_queue.appendleft((info, segmented))
            self._vs = ns

    # ----------------------------------------------------------------- handlers (named in TRANSITIONS)

    def _send_snrm(self, _apdu: bytes) -> None:
        self._reset_link()
        info = b"" if self.proposed.is_default else self.proposed.encode()
        self._send(FrameType.SNRM, info)
        self.state = HdlcState.AWAITING_CONNECTION

    def _client_connected(self, frame: HdlcFrame) -> None:
        # Liberal in what it accepts: a UA whose parameters are odd still brings the link up, with
        # defaults for what could not be read (a discarded UA only makes the client repeat its SNRM).
        theirs, notes = HdlcParameters.read_lenient(frame.information)
        mine = self.proposed
        self.parameters = HdlcParameters(
            max_info_tx=min(mine.max_info_tx, theirs.max_info_rx),
            max_info_rx=min(mine.max_info_rx, theirs.max_info_tx),
            window_tx=min(mine.window_tx, theirs.window_rx),
            window_rx=min(mine.window_rx, theirs.window_tx),
        )
        self._reset_link()
        self.state = HdlcState.CONNECTED
        self._events.append(Connected(self.parameters, notes))

    def _refused(self, _frame: HdlcFrame) -> None:
        self.state = HdlcState.DISCONNECTED
        self._events.append(Disconnected("server answered SNRM with DM"))

    def _rejected(self, frame: HdlcFrame) -> None:
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._events.append(FrameRejected(frame.information))

    def _peer_disconnected(self, _frame: HdlcFrame) -> None:
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._events.append(Disconnected("server reports disconnected mode (DM)"))

    def _send_disc(self, _apdu: bytes) -> None:
        self._send(FrameType.DISC)
        self.state = HdlcState.AWAITING_DISCONNECTION

    def _disconnect_confirmed(self, frame: HdlcFrame) -> None:
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._events.append(Disconnected(f"disconnect confirmed by {frame.frame_type.name}"))

    def _ignore(self, _frame: HdlcFrame) -> None:
        """Late frames of a link being torn down carry nothing worth reporting."""

    def _send_poll(self, _apdu: bytes) -> None:
        self._send(FrameType.RR)

    def _server_connect(self, frame: HdlcFrame) -> None:
        theirs, notes = HdlcParameters.read_lenient(frame.information)
        mine = self.proposed
        self.parameters = HdlcParameters(
            max_info_tx=min(mine.max_info_tx, theirs.max_info_rx),
            max_info_rx=min(mine.max_info_rx, theirs.max_info_tx),
            window_tx=min(mine.window_tx, theirs.window_rx),
            window_rx=min(mine.window_rx, theirs.window_tx),
        )
        self._bound_client = frame.source
        self._reset_link()
        self._holds_poll = True
        self._send(FrameType.UA, self.parameters.encode())
        self.state = HdlcState.CONNECTED
        self._events.append(Connected(self.parameters, notes))

    def _answer_dm(self, frame: HdlcFrame) -> None:
        if frame.poll_final:
            self._send(FrameType.DM, to=frame.source)

    def _server_disconnect(self, frame: HdlcFrame) -> None:
        self._holds_poll = True
        self._send(FrameType.UA)
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._bound_client = self.client_address
        self._events.append(Disconnected("client sent DISC"))

    def _server_drop(self, _apdu: bytes) -> None:
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._bound_client = self.client_address

    def _receive_i(self, frame: HdlcFrame) -> None:
        if frame.poll_final:
            self._holds_poll = True
        if not self._acknowledge(frame.receive_sequence):
            self._events.append(FrameDiscarded(
                f"I-frame acknowledges N(R)={frame.receive_sequence} never sent", self._consumed + self._pos))
            self._reply_rr_if_polled(frame)
            return
        if frame.send_sequence != self._vr:
            # Out of sequence (a repeat or a gap): ignore it and tell the peer which N(S) we expect.
            self._events.append(FrameDiscarded(
                f"I-frame N(S)={frame.send_sequence} out of sequence, expected {self._vr}",
                self._consumed + self._pos))
            self._reply_rr_if_polled(frame)
            return
        self._vr = (self._vr + 1) % 8
        info = frame.information
        if not self._rx_parts:
            expected = LLC_RESPONSE if self.role is Role.CLIENT else LLC_COMMAND
            if info[:3] == expected:
                info = info[3:]
        self._rx_parts.append(info)
        if frame.segmented:
            self._reply_rr_if_polled(frame)
            return
        apdu = b"".join(self._rx_parts)
        self._rx_parts = []
        self._events.append(ApduReceived(apdu))
        self._pump()

    def _reply_rr_if_polled(self, frame: HdlcFrame) -> None:
        if frame.poll_final:
            self._send(FrameType.RR)

    def _receive_rr(self, frame: HdlcFrame) -> None:
        if frame.poll_final:
            self._holds_poll = True
        if not self._acknowledge(frame.receive_sequence):
            self._events.append(FrameDiscarded(
                f"RR acknowledges N(R)={frame.receive_sequence} never sent", self._consumed + self._pos))
            self._reply_rr_if_polled_server(frame)
            return
        self._peer_busy = False
        if frame.poll_final and self._unacked:
            self._go_back()
        self._pump()
        self._reply_rr_if_polled_server(frame)

    def _reply_rr_if_polled_server(self, frame: HdlcFrame) -> None:
        # A polled secondary with nothing to send must still answer, with RR.
        if self.role is Role.SERVER and frame.poll_final and self._holds_poll:
            self._send(FrameType.RR)

    def _receive_rnr(self, frame: HdlcFrame) -> None:
        if frame.poll_final:
            self._holds_poll = True
        self._acknowledge(frame.receive_sequence)
        self._peer_busy = True
        self._events.append(PeerBusy())
        self._reply_rr_if_polled_server(frame)

    def _receive_ui(self, frame: HdlcFrame) -> None:
        info = frame.information
        if info[:2] == b"\xe6\xe6" or info[:2] == b"\xe6\xe7":
            info = info[3:]
        self._events.append(ApduReceived(info))
        if self.role is Role.SERVER and frame.poll_final and self.state is HdlcState.CONNECTED:
            self._holds_poll = True
            self._send(FrameType.RR)
