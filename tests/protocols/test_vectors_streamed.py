"""Every APDU vector carried the way a meter sends it: inside wrapper and HDLC frames, one byte at a time.

The per-module tests check each vector both ways as a whole APDU; this checks that the transport
layers deliver the same APDU intact however the bytes arrive, and that it still decodes to the
expected value, with junk after the frame left for the next one.
"""

from __future__ import annotations

import pytest

from protocols.apdu import decode_apdu
from protocols.hdlc import ApduReceived as HdlcApdu
from protocols.hdlc import HdlcConnection, HdlcParameters, Role, client_address, server_address
from protocols.wrapper import ApduReceived as WrapperApdu
from protocols.wrapper import WrapperConnection, WrapperFrame
from tests.vectors.acse_vectors import ACSE_VECTORS, INITIATE_VECTORS
from tests.vectors.xdlms_vectors import VECTORS as XDLMS_VECTORS

ALL = [(name, bytes.fromhex("".join(hexstr.split())), expected)
       for name, _source, hexstr, expected in (*ACSE_VECTORS, *INITIATE_VECTORS, *XDLMS_VECTORS)]


@pytest.mark.parametrize(("name", "apdu", "expected"), ALL, ids=[v[0] for v in ALL])
def test_through_the_wrapper_one_byte_at_a_time(name: str, apdu: bytes, expected: object) -> None:
    receiver = WrapperConnection(local_port=1, remote_port=0x10)
    stream = WrapperFrame(0x10, 1, apdu).encode() + WrapperFrame(0x10, 1, b"\xc0").encode()[:5]
    events = []
    for byte in stream:
        events += receiver.receive_data(bytes((byte,)))
    received = [e for e in events if isinstance(e, WrapperApdu)]
    assert [e.apdu for e in received] == [apdu]
    assert decode_apdu(received[0].apdu) == expected


@pytest.mark.parametrize(("name", "apdu", "expected"), ALL, ids=[v[0] for v in ALL])
def test_through_hdlc_one_byte_at_a_time(name: str, apdu: bytes, expected: object) -> None:
    params = HdlcParameters(max_info_tx=32, max_info_rx=32)  # small: long vectors are segmented
    meter = server_address(1, 0x11, 4)
    client = HdlcConnection(Role.CLIENT, server_address=meter, client_address=client_address(0x10),
                            parameters=params)
    server = HdlcConnection(Role.SERVER, server_address=meter, parameters=params)
    client.connect()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_apdu(apdu)
    received: list[bytes] = []
    for _ in range(200):  # segments and their RRs, bounded
        chunk = client.data_to_send()
        if not chunk:
            break
        for byte in chunk:
            received += [e.apdu for e in server.receive_data(bytes((byte,))) if isinstance(e, HdlcApdu)]
        client.receive_data(server.data_to_send())
    assert received == [apdu]
    assert decode_apdu(received[0]) == expected
