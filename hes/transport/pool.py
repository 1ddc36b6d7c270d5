"""Idle TCP connections kept for the next session to the same peer: a data concentrator's wrapper port.

A concentrated read is one association with one of the DC's logical devices; the TCP wrapper
addresses each association by its wPorts, so consecutive associations with different logical
devices can use one TCP connection instead of one each (a pass over 500 meters of a DC: one
handshake, not 500). ``LinkPool`` holds the streams between sessions; ``hes.session`` decides
when a stream may come back (a clean release) and retries once on a fresh connection when a
reused one turns out closed by the DC (``stale``).
"""

from __future__ import annotations

import asyncio
import logging

from hes.transport.tcp import TcpStream, open_tcp

__all__ = ["DEFAULT_IDLE", "DEFAULT_PER_PEER", "LinkPool"]

logger = logging.getLogger(__name__)

#: Idle streams kept per peer: at least a DC's usual session budget (``concentrator.budget``, 4 by default).
DEFAULT_PER_PEER = 8
#: Seconds a stream may wait unused. Short: within a pass sessions follow each other in milliseconds,
#: and a DC that closes idle connections itself makes an older stream cost a failed first exchange.
DEFAULT_IDLE = 5.0
_SWEEP_SLACK = 0.001


class LinkPool:
    """Idle ``TcpStream``s per peer (host, port), most recently used first, for ONE event loop.

    ``open`` takes the most recently given back stream that is still healthy and younger than
    ``idle`` seconds, else connects. ``give_back`` keeps a stream only when it is ``reusable``,
    the pool is open and fewer than ``per_peer`` wait for that peer; anything else is closed. A
    timer closes streams left idle too long, so a pool nobody uses any more lets its connections
    go. After ``aclose`` the pool keeps nothing: ``open`` connects, ``give_back`` closes (sessions
    still running when their worker stops end normally).

    Bound to the loop that first uses it, like ``hes.slots.Gate``: one object per
    event loop, shared by the sessions of that loop; not thread-safe. ``opened``, ``reused`` and
    ``discarded`` (streams the pool closed instead of handing them out: broken or expired while
    idle, over ``per_peer``, found closed by the peer, at ``aclose``) are for operators and tests.
    """

    def __init__(self, *, per_peer: int = DEFAULT_PER_PEER, idle: float = DEFAULT_IDLE) -> None:
        if per_peer < 1:
            raise ValueError(f"per_peer {per_peer} must be at least 1")
        if idle <= 0:
            raise ValueError(f"idle {idle} must be positive")
        self.per_peer = per_peer
        self.idle = idle
        # peer ("host:port", as ``TcpStream.peer``) -> [(stream, loop time it was given back)], oldest first.
        self._streams: dict[str, list[tuple[TcpStream, float]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        #: Connections made by ``open``.
        self.opened = 0
        #: Sessions that got an idle stream instead of a new connection.
        self.reused = 0
        #: Streams the pool closed instead of handing them out.
        self.discarded = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def idle_streams(self, host: str | None = None, port: int | None = None) -> int:
        """Streams waiting now: for one peer, or (no arguments) for every peer."""
        if host is None or port is None:
            return sum(len(streams) for streams in self._streams.values())
        return len(self._streams.get(f"{host}:{port}", ()))

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a LinkPool is used from one event loop only (make one per loop)")
        return loop

    async def open(self, host: str, port: int, *, timeout: float | None,
                   fresh: bool = False) -> tuple[TcpStream, bool]:
        """A stream to ``host:port`` and whether it was reused; ``fresh``: connect even if one waits.

        Connecting raises what ``open_tcp`` raises (``ConnectTimeout``, ``ConnectionLost``).
        """
        loop = self._bind()
        peer = f"{host}:{port}"
        streams = None if fresh or self._closed else self._streams.get(peer)
        if streams:
            oldest_kept = loop.time() - self.idle
            while streams:
                stream, since = streams.pop()
                if since > oldest_kept and stream.reusable:
                    if not streams:
                        del self._streams[peer]
                    self.reused += 1
                    return stream, True
                self._discard(stream)
            del self._streams[peer]
        stream = await open_tcp(host, port, timeout=timeout)
        self.opened += 1
        return stream, False

    def give_back(self, stream: TcpStream) -> None:
        """Keep ``stream`` for the next session to its peer, or close it (see the class docstring)."""
        loop = self._bind()
        if self._closed or not stream.reusable:
            self._discard(stream)
            return
        streams = self._streams.setdefault(stream.peer, [])
        if len(streams) >= self.per_peer:
            self._discard(stream)
            return
        stream.park()
        streams.append((stream, loop.time()))
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle, self._expire)

    def stale(self, stream: TcpStream) -> None:
        """``stream``, just taken from the pool, turned out closed by its peer: close it, and the peer's
        other idle streams, which waited longer and are as likely gone (a DC that restarted, or closes
        idle connections on a timer)."""
        self._bind()
        self._discard(stream)
        for other, _ in self._streams.pop(stream.peer, []):
            self._discard(other)

    def _discard(self, stream: TcpStream) -> None:
        # A synchronous close: the loop flushes and closes the socket; nothing here needs to wait for it.
        self.discarded += 1
        stream.close()

    def _expire(self) -> None:
        """The sweep: close streams idle for ``idle`` seconds (or broken while idle); re-arm for the rest."""
        self._sweep = None
        loop = self._loop
        if loop is None or self._closed:
            return
        # A stream due within the loop's timer slack goes now: the timer may fire a hair early.
        oldest_kept = loop.time() - self.idle + _SWEEP_SLACK
        next_due: float | None = None
        for peer in list(self._streams):
            kept = []
            for stream, since in self._streams[peer]:
                if since > oldest_kept and stream.reusable:
                    kept.append((stream, since))
                    next_due = since if next_due is None else min(next_due, since)
                else:
                    self._discard(stream)
            if kept:
                self._streams[peer] = kept
            else:
                del self._streams[peer]
        if next_due is not None:
            self._sweep = loop.call_at(next_due + self.idle, self._expire)

    async def aclose(self) -> None:
        """Close every idle stream; from now on nothing is kept (``open`` connects, ``give_back`` closes)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        streams, self._streams = self._streams, {}
        count = 0
        for idle in streams.values():
            for stream, _ in idle:
                self._discard(stream)
                count += 1
        if count:
            # Let the transports run their close callbacks: the sockets are closed when this returns.
            await asyncio.sleep(0)
            logger.debug("link pool closed %d idle connection(s)", count)
