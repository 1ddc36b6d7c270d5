"""Asyncio transports that drive the sans-IO stack: byte streams (TCP, serial) and APDU links over them.

``ApduLink`` is what a meter session talks to: whole APDUs out, one whole APDU in per ``receive``
(read deadline included), ``aclose`` to end the link (HDLC: DISC first). ``WrapperLink`` and
``HdlcLink`` are the two implementations, over any ``Stream``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hes.transport.hdlc import HdlcLink, HdlcOptions, open_hdlc
from hes.transport.tcp import SerialStream, Stream, TcpStream, map_errors, open_serial, open_tcp
from hes.transport.wrapper import WrapperLink

__all__ = [
    "ApduLink",
    "HdlcLink",
    "HdlcOptions",
    "SerialStream",
    "Stream",
    "TcpStream",
    "WrapperLink",
    "map_errors",
    "open_hdlc",
    "open_serial",
    "open_tcp",
]


class ApduLink(Protocol):
    """Whole APDUs over one link to one server (logical device)."""

    @property
    def peer(self) -> str: ...

    async def send(self, apdus: Sequence[bytes]) -> None: ...

    async def receive(self, timeout: float | None) -> bytes: ...

    async def aclose(self) -> None: ...
