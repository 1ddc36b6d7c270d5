"""Codec benchmark: a GET response with a 96-row x 3-column profile into typed rows, ours against the peers.

All decoders get the same bytes in the same run (built independently in ``bench.codec_peers``) and
must give the same rows before anything is timed. Run: ``python -m bench.codec [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
from datetime import datetime
from typing import Any

from bench import codec_peers
from protocols.apdu import decode_apdu
from protocols.cosem.profile import ProfileColumn, parse_profile_buffer
from protocols.obis import ObisCode
from protocols.security import ServiceSpecificCipheredApdu, decipher
from protocols.xdlms.get import GetResponseNormal
from protocols.xdlms.selective_access import CaptureObjectDefinition

__all__ = ["main", "ours_decode_ciphered", "ours_decode_plain"]

COLUMNS = [
    ProfileColumn.of(CaptureObjectDefinition(8, ObisCode(0, 0, 1, 0, 0, 255), 2)),
    ProfileColumn.of(CaptureObjectDefinition(3, ObisCode(1, 0, 1, 8, 0, 255), 2)),
    ProfileColumn.of(CaptureObjectDefinition(3, ObisCode(1, 0, 2, 8, 0, 255), 2)),
]
CAPTURE_PERIOD = 900


def _rows(apdu: Any) -> list[Any]:
    if not isinstance(apdu, GetResponseNormal):
        raise TypeError(f"expected a GetResponseNormal, got {type(apdu).__name__}")
    return parse_profile_buffer(apdu.data, COLUMNS, CAPTURE_PERIOD)


def ours_decode_plain(raw: bytes) -> list[Any]:
    """APDU -> GetResponseNormal -> typed rows (aware datetimes, ints)."""
    return _rows(decode_apdu(raw))


def ours_decode_ciphered(raw: bytes) -> list[Any]:
    """glo-get-response -> decipher (suite 0) -> GetResponseNormal -> typed rows."""
    envelope = decode_apdu(raw)
    if not isinstance(envelope, ServiceSpecificCipheredApdu):
        raise TypeError(f"expected a service-specific ciphered APDU, got {type(envelope).__name__}")
    plain = decipher(
        envelope.content,
        system_title=codec_peers.SERVER_SYSTEM_TITLE,
        encryption_key=codec_peers.EK,
        authentication_key=codec_peers.AK,
    )
    return _rows(decode_apdu(plain))


def _normalise(rows: list[Any]) -> list[tuple[datetime, int, int]]:
    out = []
    for row in rows:
        if hasattr(row, "values"):  # our ProfileRow
            moment, a_plus, a_minus = row.values
        else:
            moment, a_plus, a_minus = row
        out.append((moment.replace(tzinfo=None), int(a_plus), int(a_minus)))
    return out


def check_agreement() -> None:
    """Every decoder must give the rows the input was built from, before any timing."""
    expected = [(m, a, b) for m, a, b in codec_peers.EXPECTED_ROWS]
    decoders = {
        "ours_plain": (ours_decode_plain, codec_peers.PLAIN_APDU),
        "ours_ciphered": (ours_decode_ciphered, codec_peers.CIPHERED_APDU),
        "dlms_cosem_plain": (codec_peers.dlms_cosem_decode_plain, codec_peers.PLAIN_APDU),
        "dlms_cosem_ciphered": (codec_peers.dlms_cosem_decode_ciphered, codec_peers.CIPHERED_APDU),
        "gurux_plain": (codec_peers.gurux_decode_plain, codec_peers.PLAIN_APDU),
        "gurux_ciphered": (codec_peers.gurux_decode_ciphered, codec_peers.CIPHERED_APDU),
    }
    for name, (fn, arg) in decoders.items():
        with contextlib.redirect_stdout(io.StringIO()):
            got = _normalise(fn(arg))
        if got != expected:
            raise SystemExit(f"bench.codec: {name} decoded different rows; no timing is meaningful")


def run(repeat: int) -> dict[str, Any]:
    check_agreement()
    measure = codec_peers.measure
    # Interleave the decoders in rounds so that machine noise hits all of them alike.
    samples: dict[str, list[float]] = {k: [] for k in (
        "ours_plain_ms", "dlms_cosem_plain_ms", "gurux_plain_ms",
        "ours_ciphered_ms", "dlms_cosem_ciphered_ms", "gurux_ciphered_ms")}
    plain, ciphered = codec_peers.PLAIN_APDU, codec_peers.CIPHERED_APDU
    rounds = 5
    per_round = max(repeat // rounds, 5)
    with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every ciphered APDU
        for _ in range(rounds):
            samples["ours_plain_ms"].append(measure(ours_decode_plain, plain, per_round * 4))
            samples["dlms_cosem_plain_ms"].append(measure(codec_peers.dlms_cosem_decode_plain, plain, per_round))
            samples["gurux_plain_ms"].append(measure(codec_peers.gurux_decode_plain, plain, per_round))
            samples["ours_ciphered_ms"].append(measure(ours_decode_ciphered, ciphered, per_round * 4))
            samples["dlms_cosem_ciphered_ms"].append(
                measure(codec_peers.dlms_cosem_decode_ciphered, ciphered, per_round)
            )
            samples["gurux_ciphered_ms"].append(
                measure(codec_peers.gurux_decode_ciphered, ciphered, max(per_round // 4, 5))
            )
    result: dict[str, Any] = {k: round(statistics.median(v), 4) for k, v in samples.items()}
    result["speedup_vs_dlms_cosem_plain"] = round(result["dlms_cosem_plain_ms"] / result["ours_plain_ms"], 2)
    result["speedup_vs_dlms_cosem_ciphered"] = round(
        result["dlms_cosem_ciphered_ms"] / result["ours_ciphered_ms"], 2
    )
    result["speedup_vs_gurux_plain"] = round(result["gurux_plain_ms"] / result["ours_plain_ms"], 2)
    result["speedup_vs_gurux_ciphered"] = round(result["gurux_ciphered_ms"] / result["ours_ciphered_ms"], 2)
    result["rows"] = codec_peers.ROWS
    result["plain_bytes"] = len(plain)
    result["ciphered_bytes"] = len(ciphered)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per decoder (default 200)")
    args = parser.parse_args(argv)
    result = run(args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
