"""Security suite 0, HLS-GMAC and key-wrap vectors from the Green Book and RFC 3394, with their sources."""

from __future__ import annotations

__all__ = [
    "AUTHENTICATION_KEY",
    "CIPHER_VECTORS",
    "CIPHERED_INITIATE_VECTORS",
    "CLIENT_SYSTEM_TITLE",
    "ENCRYPTION_KEY",
    "HLS_GMAC_VECTORS",
    "INVOCATION_COUNTER",
    "KEY_WRAP_VECTORS",
    "SERVER_SYSTEM_TITLE",
]

# The Green Book's example security material (suite 0).
ENCRYPTION_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AUTHENTICATION_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SERVER_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000000001")
INVOCATION_COUNTER = 0x01234567

_GB_CIPHERING = (
    "Green Book ed. 7, p. 285 (suite 0 ciphering example: get-request for the clock time), as "
    "reproduced in the Elster DLMS Java library tests (CoderXDlmsApduTest, 'GB ed.7 p.285'); the "
    "authenticated-and-encrypted case also in u9n/dlms-cosem tests/test_security.py"
)

#: (name, source, hex of the glo-get-request APDU, expected (security control byte, plaintext hex))
CIPHER_VECTORS: tuple[tuple[str, str, str, tuple[int, str]], ...] = (
    (
        "authenticated-only",
        _GB_CIPHERING,
        "C81E1001234567C0010000080000010000FF020006725D910F9221D263877516",
        (0x10, "C0010000080000010000FF0200"),
    ),
    (
        "encrypted-only",
        _GB_CIPHERING,
        "C8122001234567411312FF935A47566827C467BC",
        (0x20, "C0010000080000010000FF0200"),
    ),
    (
        "authenticated-and-encrypted",
        _GB_CIPHERING,
        "C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B",
        (0x30, "C0010000080000010000FF0200"),
    ),
)

#: (name, source, hex of the ciphered APDU (sender system title 4D4D4D0000BC614E), expected plaintext hex)
CIPHERED_INITIATE_VECTORS: tuple[tuple[str, str, str, str], ...] = (
    (
        "glo-initiate-request",
        "Green Book ed. 10 ciphered AARQ example, as reproduced in u9n/dlms-cosem "
        "tests/test_xdlms/test_initiate.py (TestGlobalCipherInitiateRequest)",
        "21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855",
        "01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0",
    ),
    (
        "glo-initiate-response",
        "u9n/dlms-cosem tests/test_asce/test_rlre.py (RLRE user-information, no section cited there); "
        "the plaintext was obtained by deciphering with the Green Book keys, so the tag check is the test",
        "281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893",
        "0800065F1F0400007C1F04000007",
    ),
)

_GB_HLS = (
    "Green Book ed. 7, p. 135 (HLS authentication mechanism 5 example), as reproduced in OpenMUC "
    "jDLMS GmacTest ('fStoCFromStandard') and the Elster DLMS Java library tests ('GB ed.7 p.135')"
)

#: (name, source, challenge hex, expected (responder system title hex, invocation counter, f(challenge) hex))
HLS_GMAC_VECTORS: tuple[tuple[str, str, str, tuple[str, int, str]], ...] = (
    (
        "client-f-stoc",
        _GB_HLS,
        "503677524A323146",  # "P6wRJ21F"
        ("4D4D4D0000000001", 0x00000001, "10000000011A52FE7DD3E72748973C1E28"),
    ),
    (
        "server-f-ctos",
        _GB_HLS,
        "4B35366956616759",  # "K56iVagY"
        ("4D4D4D0000BC614E", 0x01234567, "1001234567FE1466AFB3DBCD4F9389E2B7"),
    ),
)

#: (name, source, wrapped hex, expected (KEK hex, key data hex))
KEY_WRAP_VECTORS: tuple[tuple[str, str, str, tuple[str, str]], ...] = (
    (
        "rfc3394-4.1-128-bit-kek-128-bit-key",
        "RFC 3394, section 4.1 (Wrap 128 bits of Key Data with a 128-bit KEK)",
        "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        ("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF"),
    ),
    (
        "rfc3394-4.6-256-bit-kek-256-bit-key",
        "RFC 3394, section 4.6 (Wrap 256 bits of Key Data with a 256-bit KEK)",
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        ),
    ),
)
