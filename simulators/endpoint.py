"""What the simulated transports serve: logical devices that answer whole APDUs in sessions.

A transport (wrapper or HDLC over TCP, the optical port, a concentrator's tunnel) opens one
``Session`` per client association it carries and hands it every APDU it receives; the session
answers with the APDUs to send back. The meter's COSEM model, a concentrator's logical devices
and fault injection all sit behind this one interface, so transports never know what they serve.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["LogicalDevice", "Session"]


class Session(Protocol):
    """One client's association with one logical device, for as long as the link lasts."""

    async def handle(self, apdu: bytes) -> list[bytes]:
        """Answer one received APDU: zero or more APDUs to send back, in order.

        May take time (a concentrator tunnelling to a meter over PLC). Never raises for bad
        bytes from the client: they get the protocol's own answer or none.
        """
        ...

    def close(self) -> None:
        """The link under the session went away (the association ends with it)."""
        ...


class LogicalDevice(Protocol):
    """A DLMS logical device that clients reach by their client SAP (wPort or HDLC address)."""

    def open_session(self, client_sap: int) -> Session | None:
        """A new session for this client, or None when the device does not serve that SAP."""
        ...
