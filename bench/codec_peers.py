"""Codec benchmark, peers' side: how fast gurux-dlms and dlms-cosem decode a 96-row load-profile GET response.

The input APDUs are built here by hand with struct and AES-GCM (not with our protocols/ package, so the
benchmark input is independent of the code it will later measure), and checked by decoding with gurux.
Run: `python -m bench.codec_peers`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import statistics
import struct
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AK",
    "CIPHERED_APDU",
    "EK",
    "EXPECTED_ROWS",
    "INVOKE_ID_AND_PRIORITY",
    "PLAIN_APDU",
    "SERVER_SYSTEM_TITLE",
    "build_ciphered_apdu",
    "build_plain_apdu",
    "dlms_cosem_decode_ciphered",
    "dlms_cosem_decode_plain",
    "expected_rows",
    "gurux_decode_ciphered",
    "gurux_decode_plain",
    "main",
    "measure",
]

SERVER_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
INVOKE_ID_AND_PRIORITY = 0xC1
ROWS = 96
START = datetime(2024, 1, 1, 0, 15)
DEVIATION = -60
SECURITY_CONTROL = 0x30
INVOCATION_COUNTER = 1

_ROW_HEAD = struct.Struct(">BBBB")  # structure tag, 3 elements, octet-string tag, length 12
_CLOCK = struct.Struct(">HBBBBBBBhB")  # year month day dow hour min sec hundredths deviation status
_DLU = struct.Struct(">BI")  # double-long-unsigned tag + value


def expected_rows() -> list[tuple[datetime, int, int]]:
    """The rows the APDU carries, as naive local times plus the two cumulative energies (Wh)."""
    rows = []
    a_plus, a_minus = 1_250_000, 310_000
    for i in range(ROWS):
        a_plus += 180 + (i * 37) % 61  # deterministic, strictly increasing
        a_minus += 20 + (i * 11) % 7
        rows.append((START + timedelta(minutes=15 * i), a_plus, a_minus))
    return rows


EXPECTED_ROWS = expected_rows()


def _clock(moment: datetime) -> bytes:
    return _CLOCK.pack(
        moment.year,
        moment.month,
        moment.day,
        moment.isoweekday(),
        moment.hour,
        moment.minute,
        moment.second,
        0,
        DEVIATION,
        0,
    )


def build_plain_apdu() -> bytes:
    """GET-Response-Normal (0xC4 0x01), invoke 0xC1, data: array[96] of structure{clock, A+, A-}."""
    out = bytearray(struct.pack(">BBBB", 0xC4, 0x01, INVOKE_ID_AND_PRIORITY, 0x00))
    out += struct.pack(">BBB", 0x01, 0x81, ROWS)  # array, length in one following byte
    for moment, a_plus, a_minus in EXPECTED_ROWS:
        out += _ROW_HEAD.pack(0x02, 0x03, 0x09, 12)
        out += _clock(moment)
        out += _DLU.pack(0x06, a_plus)
        out += _DLU.pack(0x06, a_minus)
    return bytes(out)


def build_ciphered_apdu(plain: bytes) -> bytes:
    """glo-get-response (0xCC) with SC 0x30, IC 1: AES-GCM, IV = system title || IC, AAD = SC || AK,
    12-byte tag (security suite 0)."""
    iv = SERVER_SYSTEM_TITLE + struct.pack(">I", INVOCATION_COUNTER)
    encryptor = Cipher(algorithms.AES(EK), modes.GCM(iv, min_tag_length=12)).encryptor()
    encryptor.authenticate_additional_data(bytes([SECURITY_CONTROL]) + AK)
    text = encryptor.update(plain) + encryptor.finalize()
    body = bytes([SECURITY_CONTROL]) + struct.pack(">I", INVOCATION_COUNTER) + text + encryptor.tag[:12]
    return bytes([0xCC, 0x82]) + struct.pack(">H", len(body)) + body


PLAIN_APDU = build_plain_apdu()
CIPHERED_APDU = build_ciphered_apdu(PLAIN_APDU)


# ---------------------------------------------------------------------------------------------------
# dlms-cosem


def _dlms_cosem_rows(data: bytes) -> list[list[Any]]:
    from dlms_cosem import dlms_data
    from dlms_cosem import time as dlms_time

    parsed = dlms_data.DlmsDataParser().parse(data, limit=1)[0]
    rows = []
    for row in parsed.value:
        clock, a_plus, a_minus = row.value
        moment, _status = dlms_time.datetime_from_bytes(bytes(clock.value))
        rows.append([moment, a_plus.value, a_minus.value])
    return rows


def dlms_cosem_decode_plain(apdu: bytes) -> list[list[Any]]:
    """XDlmsApduFactory -> GetResponseNormal (data kept as bytes) -> DlmsDataParser -> rows."""
    from dlms_cosem.connection import XDlmsApduFactory

    response = XDlmsApduFactory.apdu_from_bytes(apdu)
    return _dlms_cosem_rows(response.data)


def dlms_cosem_decode_ciphered(apdu: bytes) -> list[list[Any]]:
    """dlms-cosem has no glo-get-response (0xCC) class: its APDU factory raises KeyError. A user must
    split the header (length, SC, IC) by hand, decipher with dlms_cosem.security.decrypt and parse
    the plaintext; that is what is timed."""
    from dlms_cosem import security

    length_bytes = apdu[1] & 0x7F if apdu[1] & 0x80 else 0
    pos = 2 + length_bytes
    sc = security.SecurityControlField.from_bytes(apdu[pos : pos + 1])
    ic = int.from_bytes(apdu[pos + 1 : pos + 5], "big")
    plain = security.decrypt(sc, SERVER_SYSTEM_TITLE, ic, EK, apdu[pos + 5 :], AK)
    return dlms_cosem_decode_plain(bytes(plain))


# ---------------------------------------------------------------------------------------------------
# gurux


@functools.lru_cache(maxsize=2)
def _gurux_client(ciphered: bool) -> Any:
    """One client per mode, built once: a gurux user keeps its client between reads."""
    from gurux_dlms.enums import Authentication, InterfaceType, Security
    from gurux_dlms.secure import GXDLMSSecureClient

    client = GXDLMSSecureClient(True, 1, 1, Authentication.NONE, None, InterfaceType.PDU)
    if ciphered:
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = bytes.fromhex("4142434445464748")  # the client's own, unused here
        client.ciphering.blockCipherKey = EK
        client.ciphering.authenticationKey = AK
        client.settings.sourceSystemTitle = SERVER_SYSTEM_TITLE  # learnt from the AARE in real life
    return client


def _gurux_rows(client: Any, apdu: bytes) -> list[list[Any]]:
    from gurux_dlms import GXReplyData
    from gurux_dlms.enums import DataType

    reply = GXReplyData()
    client.getData(apdu, reply)
    rows = []
    for clock, a_plus, a_minus in reply.value:
        moment = client.changeType(clock, DataType.DATETIME).value
        rows.append([moment, int(a_plus), int(a_minus)])
    return rows


def gurux_decode_plain(apdu: bytes) -> list[list[Any]]:
    """GXDLMSClient.getData then changeType(octet-string -> DATETIME) per row, as a gurux user does."""
    return _gurux_rows(_gurux_client(False), apdu)


def gurux_decode_ciphered(apdu: bytes) -> list[list[Any]]:
    return _gurux_rows(_gurux_client(True), apdu)


# ---------------------------------------------------------------------------------------------------


def measure(fn: Callable[[bytes], Any], arg: bytes, repeat: int = 200, warmup: int = 20) -> float:
    """Median wall time of fn(arg) in milliseconds over `repeat` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn(arg)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000.0


def main(repeat: int = 200) -> dict[str, float]:
    # gurux print()s two lines per ciphered APDU; send them to a buffer (their cost stays in the timing)
    with contextlib.redirect_stdout(io.StringIO()):
        results = {
            "dlms_cosem_decode_plain": measure(dlms_cosem_decode_plain, PLAIN_APDU, repeat),
            "dlms_cosem_decode_ciphered": measure(dlms_cosem_decode_ciphered, CIPHERED_APDU, repeat),
            "gurux_decode_plain": measure(gurux_decode_plain, PLAIN_APDU, repeat),
            "gurux_decode_ciphered": measure(gurux_decode_ciphered, CIPHERED_APDU, repeat),
        }
    print(f"plain APDU {len(PLAIN_APDU)} bytes, ciphered APDU {len(CIPHERED_APDU)} bytes, {ROWS} rows")
    for name, ms in results.items():
        print(f"{name:30s} {ms:8.3f} ms (median of {repeat})")
    return results


if __name__ == "__main__":
    main()
