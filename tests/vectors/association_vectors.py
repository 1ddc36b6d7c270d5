"""Byte vectors of a whole HLS-GMAC association exchange, from the Green Book examples, with their sources."""

from __future__ import annotations

__all__ = [
    "CLIENT_SYSTEM_TITLE",
    "CTOS",
    "HLS_EXCHANGE",
    "SERVER_INVOCATION_COUNTER",
    "SERVER_SYSTEM_TITLE",
    "STOC",
]

CLIENT_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000000001")
SERVER_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CTOS = b"K56iVagY"
STOC = b"P6wRJ21F"
#: The server's counter in the Green Book's f(CtoS) example.
SERVER_INVOCATION_COUNTER = 0x01234567

_AARQ = (
    "Green Book ed. 10 (DLMS UA 1000-2), AARQ encoding examples, p. 444 (HLS-GMAC, CtoS K56iVagY), "
    "as reproduced in u9n/dlms-cosem tests/test_asce/test_aarq.py"
)
_AARE = (
    "Green Book ed. 10 (DLMS UA 1000-2), AARE encoding examples (StoC P6wRJ21F), as reproduced in "
    "u9n/dlms-cosem tests/test_asce/test_aare.py"
)
_HLS = (
    "Green Book ed. 7, p. 135 (HLS mechanism 5 example: f(StoC) with the client's system title and "
    "IC 1, f(CtoS) with the server's and IC 0x01234567), as reproduced in OpenMUC jDLMS GmacTest; "
    "wrapped here in the ACTION reply_to_HLS_authentication (class 15, 0.0.40.0.0.255, method 1) "
    "request and response built by hand from the xDLMS ACTION encoding"
)

#: (name, source, hex, expected): each step of the exchange, in order. ``expected`` names who
#: sends it and, for the ACTION APDUs, the f() value carried.
HLS_EXCHANGE: tuple[tuple[str, str, str, tuple[str, str]], ...] = (
    (
        "aarq-hls-gmac",
        _AARQ,
        "6036A1090607608574050801018A0207808B0760857405080205AC0A80084B35366956616759"
        "BE10040E01000000065F1F0400007E1F04B0",
        ("client", ""),
    ),
    (
        "aare-authentication-required",
        _AARE,
        "6142A109060760857405080101A203020100A305A10302010E88020780890760857405080205"
        "AA0A8008503677524A323146BE10040E0800065F1F040000501F01F40007",
        ("server", ""),
    ),
    (
        "action-reply-to-hls-f-stoc",
        _HLS,
        "C301C1000F0000280000FF01010911" + "10000000011A52FE7DD3E72748973C1E28",
        ("client", "10000000011A52FE7DD3E72748973C1E28"),
    ),
    (
        "action-response-f-ctos",
        _HLS,
        "C701C10001000911" + "1001234567FE1466AFB3DBCD4F9389E2B7",
        ("server", "1001234567FE1466AFB3DBCD4F9389E2B7"),
    ),
)
