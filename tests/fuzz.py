"""Fuzz every decoder and connection with random and mutated bytes: typed errors or events, nothing else.

``python -m tests.fuzz --budget small`` (CI, seconds) or ``--budget large`` (minutes), or ``--runs N``.
The corpus is every hex string in ``tests/vectors`` plus the benchmark's profile APDUs; inputs are
drawn from a seeded generator, so a failure prints the seed and the input to replay it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import random
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from protocols import iec62056_21, mbus
from protocols.apdu import decode_apdu
from protocols.axdr import decode_data, skip_data
from protocols.cosem import INTERFACE_CLASSES, attribute_from_data
from protocols.cosem.profile import ProfileColumn, parse_profile_buffer
from protocols.errors import DecodeError, SecurityError
from protocols.hdlc import HdlcConnection, HdlcFrame, Role, client_address, server_address
from protocols.obis import ObisCode
from protocols.security import decipher, decode_ciphered_apdu
from protocols.translate import TranslatorKeys, translate, translate_data
from protocols.wrapper import WrapperConnection, WrapperFrame
from protocols.xdlms.selective_access import CaptureObjectDefinition

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TITLE = bytes.fromhex("4D4D4D0000BC614E")
# The published key of the real captures in tests/vectors/captures.py: mutated captures decipher.
CAPTURE_KEY = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
ALLOWED: tuple[type[BaseException], ...] = (DecodeError, SecurityError)
BUDGETS = {"small": 300, "medium": 3000, "large": 20000}

_COLUMNS = [
    ProfileColumn.of(CaptureObjectDefinition(8, ObisCode(0, 0, 1, 0, 0, 255), 2)),
    ProfileColumn.of(CaptureObjectDefinition(3, ObisCode(1, 0, 1, 8, 0, 255), 2)),
    ProfileColumn.of(CaptureObjectDefinition(3, ObisCode(1, 0, 2, 8, 0, 255), 2)),
]


def _hdlc_stream(role: Role) -> Callable[[bytes], Any]:
    def feed(raw: bytes) -> Any:
        conn = HdlcConnection(role, server_address=server_address(1, 0x11, 4),
                              client_address=client_address(0x10) if role is Role.CLIENT else None)
        if role is Role.CLIENT:
            conn.connect()
            conn.data_to_send()
        events = []
        for start in range(0, len(raw), 7):  # in pieces, as a socket would give them
            events += conn.receive_data(raw[start : start + 7])
            conn.data_to_send()
        return events

    return feed


def _wrapper_stream(raw: bytes) -> Any:
    conn = WrapperConnection(0x10, 0x01)
    return [conn.receive_data(raw[i : i + 5]) for i in range(0, len(raw), 5)]


def _mode_e(role: iec62056_21.ModeERole) -> Callable[[bytes], Any]:
    def feed(raw: bytes) -> Any:
        identification = (
            iec62056_21.IdentificationMessage("HES", "5", "SIMULATED")
            if role is iec62056_21.ModeERole.SERVER
            else None
        )
        handshake = iec62056_21.ModeEHandshake(role, identification=identification)
        if role is iec62056_21.ModeERole.CLIENT:
            handshake.start()
        return handshake.receive_data(raw)

    return feed


def _attributes(raw: bytes) -> Any:
    data, _ = decode_data(raw)
    out = []
    for class_id, ic in INTERFACE_CLASSES.items():
        for attribute in ic.attributes:
            with contextlib.suppress(DecodeError):
                out.append(attribute_from_data(class_id, int(attribute), data))
    return out


def _decipher(raw: bytes) -> Any:
    return decipher(raw, system_title=TITLE, encryption_key=EK, authentication_key=AK)


TARGETS: dict[str, Callable[[bytes], Any]] = {
    "axdr.decode_data": decode_data,
    "axdr.skip_data": skip_data,
    "apdu.decode_apdu": decode_apdu,
    "security.decode_ciphered_apdu": decode_ciphered_apdu,
    "security.decipher": _decipher,
    "hdlc.HdlcFrame.decode": HdlcFrame.decode,
    "hdlc.client.receive_data": _hdlc_stream(Role.CLIENT),
    "hdlc.server.receive_data": _hdlc_stream(Role.SERVER),
    "wrapper.WrapperFrame.decode": WrapperFrame.decode,
    "wrapper.receive_data": _wrapper_stream,
    "iec62056_21.decode_message": iec62056_21.decode_message,
    "iec62056_21.client": _mode_e(iec62056_21.ModeERole.CLIENT),
    "iec62056_21.server": _mode_e(iec62056_21.ModeERole.SERVER),
    "cosem.attribute_from_data": _attributes,
    "cosem.parse_profile_buffer": lambda raw: parse_profile_buffer(raw, _COLUMNS, 900),
    "translate": translate,
    "translate.with_keys": lambda raw: translate(raw, TranslatorKeys(EK, AK, TITLE)),
    "translate.with_capture_key": lambda raw: translate(raw, TranslatorKeys(CAPTURE_KEY)),
    "translate.data": translate_data,
    "mbus.join_segments": lambda raw: mbus.join_segments(mbus.decode_frames(raw)),
}


def _hex_strings(value: Any, depth: int = 0) -> Iterable[bytes]:
    if depth > 6:
        return
    if isinstance(value, str):
        text = "".join(value.split())
        if len(text) >= 2 and len(text) % 2 == 0:
            try:
                yield bytes.fromhex(text)
            except ValueError:
                return
    elif isinstance(value, bytes) and len(value) >= 2:
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _hex_strings(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _hex_strings(item, depth + 1)


def corpus() -> list[bytes]:
    import tests.vectors as vectors
    from bench import codec_peers

    found: set[bytes] = {codec_peers.PLAIN_APDU, codec_peers.CIPHERED_APDU}
    for module_info in pkgutil.iter_modules(vectors.__path__):
        module = importlib.import_module(f"tests.vectors.{module_info.name}")
        for name, value in vars(module).items():
            if not name.startswith("__"):
                found.update(_hex_strings(value))
    return sorted(found)


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not data or choice < 0.1:
            data += rng.randbytes(rng.randint(1, 8))
        elif choice < 0.5:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.65:
            del data[rng.randrange(len(data)) :]
        elif choice < 0.8:
            position = rng.randrange(len(data) + 1)
            data[position:position] = rng.randbytes(rng.randint(1, 4))
        elif choice < 0.9:
            position = rng.randrange(len(data))
            del data[position : position + rng.randint(1, 4)]
        else:  # a length-looking byte made large
            data[rng.randrange(len(data))] = rng.choice((0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF))
    return bytes(data)


def run(runs: int, seed: int, targets: Iterable[str] | None = None) -> int:
    seeds = corpus()
    failures = 0
    for name in targets or TARGETS:
        target = TARGETS[name]
        rng = random.Random(f"{seed}:{name}")
        for i in range(runs):
            raw = rng.randbytes(rng.randint(0, 64)) if i % 4 == 0 else mutate(rng, rng.choice(seeds))
            try:
                target(raw)
            except ALLOWED:
                pass
            except Exception as exc:  # the finding this script exists for
                failures += 1
                where = traceback.extract_tb(exc.__traceback__)[-1]
                print(f"FAIL {name} seed={seed} run={i}: {type(exc).__name__}: {exc} "
                      f"at {where.filename}:{where.lineno} input={raw.hex()}")
                if failures >= 20:
                    return failures
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    parser.add_argument("--runs", type=int, help="inputs per target (overrides --budget)")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    args = parser.parse_args(argv)
    runs = args.runs or BUDGETS[args.budget]
    failures = run(runs, args.seed, args.target)
    total = runs * len(args.target or TARGETS)
    print(f"fuzz: {total} inputs, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
