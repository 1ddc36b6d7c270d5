"""Gateway APDUs that carry another APDU to or from a meter behind a data concentrator (0xE6, 0xE7).

Layout as Gurux GXDLMS writes and reads it (``Command.GATEWAY_REQUEST``/``GATEWAY_RESPONSE``):
tag, network-id (unsigned), physical-device-address (octet-string: length then bytes), then the
carried APDU up to the end. The Green Book's gateway clause itself was not at hand to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocols.xdlms.common import Reader, Writer, XdlmsTag, decode_entry, read_tag

__all__ = [
    "GatewayRequest",
    "GatewayResponse",
    "decode_gateway_request",
    "decode_gateway_response",
]


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """An APDU for the meter at ``physical_device_address`` on network ``network_id``."""

    TAG: ClassVar[int] = XdlmsTag.GATEWAY_REQUEST

    network_id: int
    physical_device_address: bytes
    apdu: bytes

    def encode(self) -> bytes:
        w = Writer(self.TAG)
        w.u8(self.network_id, "network id")
        w.octet_string(bytes(self.physical_device_address))
        w.raw(bytes(self.apdu))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GatewayRequest:
        return decode_gateway_request(buf)

    @classmethod
    def read(cls, r: Reader) -> GatewayRequest:
        read_tag(r, cls.TAG)
        network_id = r.u8("network id")
        return cls(network_id, r.octet_string("physical device address"), r.rest())


@dataclass(frozen=True, slots=True)
class GatewayResponse:
    """An APDU from the meter at ``physical_device_address`` on network ``network_id``."""

    TAG: ClassVar[int] = XdlmsTag.GATEWAY_RESPONSE

    network_id: int
    physical_device_address: bytes
    apdu: bytes

    def encode(self) -> bytes:
        w = Writer(self.TAG)
        w.u8(self.network_id, "network id")
        w.octet_string(bytes(self.physical_device_address))
        w.raw(bytes(self.apdu))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GatewayResponse:
        return decode_gateway_response(buf)

    @classmethod
    def read(cls, r: Reader) -> GatewayResponse:
        read_tag(r, cls.TAG)
        network_id = r.u8("network id")
        return cls(network_id, r.octet_string("physical device address"), r.rest())


def decode_gateway_request(buf: bytes) -> GatewayRequest:
    """Decode a whole gateway-request (tag 0xE6); the carried APDU is left as bytes."""
    return decode_entry(GatewayRequest.read, buf)


def decode_gateway_response(buf: bytes) -> GatewayResponse:
    """Decode a whole gateway-response (tag 0xE7); the carried APDU is left as bytes."""
    return decode_entry(GatewayResponse.read, buf)
