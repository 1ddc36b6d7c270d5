"""The push listener fed bytes no one here wrote: a Landis+Gyr E450 push from esphome's thread, thirteen IDIS UDP
pushes from dlms-cosem's tests (with their keys), and random datagrams. Each source is named by its data."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from hes.events.push import PushHandler, PushListener, _DatagramIntake
from hes.model import MeterSecurity
from hes.registry import Registry
from protocols.hdlc import HdlcFrame
from protocols.wrapper import WrapperFrame
from protocols.xdlms.gbt import split_into_blocks
from tests.events.helpers import push_field, run, wait_for
from tests.vectors.captures import CAPTURES

# A Landis+Gyr E450 push on its HAN (CII) port, as three HDLC frames: LLC header before the first
# GBT block only, blocks 1-3 of a plain DataNotification (push object list, then the values).
# Source: https://github.com/esphome/esphome/pull/16942 (comment of 2026-07-18, "Landis+Gyr E450
# HDLC Cyprus"); the frames' HCS and FCS check, which is how the log's line breaks were rejoined.
E450_FRAMES = [
    "7EA084CEFF0313128BE6E700E04000010000700F007C83D30C07EA071206103A00FF800000020D010D020412002809060009190900FF0F"
    "021200000204120001090600002A0000FF0F02120000020412000109060000600101FF0F02120000020412000109060000600E00FF0F"
    "02120000020412000309060100010801FF0F0212000008F77E",
    "7EA07DCEFF0313D045E040000200006C020412000309060100010802FF0F02120000020412000309060100020801FF0F021200000204"
    "12000309060100020802FF0F02120000020412000309060100010800FF0F02120000020412000309060100020800FF0F021200000204"
    "12000309060100030800FF0F02120000B34E7E",
    "7EA084CEFF0313128BE0C00003000073020412000309060100040800FF0F0212000002041200460906000060030AFF0F031200000910"
    "4C475A31303230373832353436333731090731323939363532090852415445320000000600361F58060036C67E0600018EB306002778"
    "D506006CE5D60600290788060004C70D06002714591601882B7E",
]


def judge_as_udp_blocks(registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                        informations: list[bytes]) -> None:
    """Send each HDLC information field (LLC + GBT block) in its own UDP wrapper PDU: the listener reassembles
    one DataNotification, a meter-data push naming no meter of ours, and refuses it for that (not as a broken
    stream); nothing stays open, nothing is dropped."""
    caplog.set_level(logging.WARNING, logger="hes.events.push")

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            for information in informations:
                await f.sender.send_datagram(WrapperFrame(1, 1, information).encode())
            await wait_for(lambda: f.listener.rejected == 1, "the reassembled push was judged")
            assert f.listener.intake.pending() == 0 and f.listener.intake.dropped == 0

    run(body)
    (line,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "DataNotification names no device" in line


def test_an_e450_push_from_the_field_is_reassembled_over_udp_and_judged_by_its_content(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """esphome's E450 frames: the LLC header before block 1 only; last block 0xC0 (last and streaming)."""
    fields = [HdlcFrame.decode(bytes.fromhex(text))[0].information for text in E450_FRAMES]
    assert fields[0][:4] == bytes.fromhex("E6E700E0") and fields[2][:2] == bytes.fromhex("E0C0")
    judge_as_udp_blocks(registry, tmp_path, caplog, fields)


def test_a_landis_gyr_e450_block_transferred_push_is_reassembled_from_its_own_bytes(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The scs/smartmeter-datacollector E450 capture of tests/vectors/captures.py, four HDLC frames."""
    capture = next(c for c in CAPTURES if c.name == "lg-e450-gbt-hdlc")
    raw = bytes.fromhex(capture.hex)
    blocks, pos = [], 0
    while pos < len(raw):
        frame, pos = HdlcFrame.decode(raw, pos)
        blocks.append(frame.information)
    # The meter puts the LLC header before its first block only.
    assert len(blocks) == 4 and blocks[0][:4] == bytes.fromhex("E6E700E0")
    assert all(b[:1] == b"\xe0" for b in blocks[1:])
    judge_as_udp_blocks(registry, tmp_path, caplog, blocks)


# Thirteen IDIS pushes over UDP from a meter in the field: each datagram one wrapper PDU around a
# general-glo-ciphering DataNotification (security control 0x30), invocation counters 0x1e5-0x1f2.
# Source: https://github.com/u9n/dlms-cosem/blob/c52e9d44ef81205a3882184a45dfd6ab7c92c67b/tests/test_udp_message.py
# (data_examples_encrypted_data_nofication); their keys (EK = AK = b"MYDUMMYGLOBALKEY"):
# https://github.com/u9n/dlms-cosem/blob/c52e9d44ef81205a3882184a45dfd6ab7c92c67b/tests/test_general_global_cipher.py
DLMS_COSEM_UDP_PUSHES = [
    "0001000100010046db082f192291991641033b30000001e5025ce9d2271fd78be8c204211a916a9d7f587e0a7a814cadea89e9593f01f92ea8c087b5bdfdefeab6becf282dfe49c08f5be6dc8400",
    "0001000100010046db082f192291991641033b30000001e603d4d3577b7f649934e3b7c719a3de351ab28c7ac7b8a1e444b89691e92591ce1eb2827df937a2e540280f6211f49364802fa0f5c413",
    "0001000100010046db082f192291991641033b30000001e71c2bbc3ffb9a4e3978f26bfaf5e941e269a2b61d47b4361b2f5b1d22f5a04eff708c9ffb493c40163a0e1978b7449cec9ccae08d1944",
    "0001000100010046db082f192291991641033b30000001e8b1f95bdd2edb41d356db57ee512c20c6ea63653a55bb18717e419f45e8d3b4f34329f4ceb21c8141a7e3cc00f06b7e2d98d76af4b806",
    "0001000100010046db082f192291991641033b30000001e9fd1c26a0a1a88b86f3dc2010b17beba368a3b6d2ad96535ad41f84d6cb69a8365db41b8cacb5449476c3f420e186ff6b1b6045117008",
    "0001000100010046db082f192291991641033b30000001ea3380bd48910076185da77cf9d0f576c47b0ac098efb37eb775898e9ccd650213a73f269f8c7bea384ed388e7ccd20506fe373b068b3a",
    "0001000100010046db082f192291991641033b30000001eb304af39131d5a64a06b2bba8f1b95dd22bfda45d39adcb0889e30373340f37c580d32266893ec727ae2eefe2d15a3889abd185940035",
    "0001000100010046db082f192291991641033b30000001ec686ff7f6d09a962be53acc95e1e4c6fe4fb15bfda293e2aecd855d7faac7998c5851ce0338666045a6cf87923456f8b12b02b62efced",
    "0001000100010046db082f192291991641033b30000001eef486600ff8cf8d4d4121e1423e510d9c8729f48b21628574fe16d9cb5406734cef5714487ff62310a43f1a76004ca5601bbf3ef9639f",
    "0001000100010046db082f192291991641033b30000001ef412638b943a0fec22c8d02b4c4b77d9e738d98e37109db85125c149fa9df3d49e309f9c3a5b3810b35ed9f5678b4c781792eb83e6e2b",
    "0001000100010046db082f192291991641033b30000001f04e40c87bdeb0c132bf4922dfc298ae7e7074f3ec5f1e0f93f336fd84a2dfb2bc0bed8084f4f2cfeb7a66b116d245c8b16b93ef4d1f88",
    "0001000100010046db082f192291991641033b30000001f1ceef1e2db661649abc3fc41b792b9ad5a9f0204aa1367b69d5dc180f8cd8af8d99259d1dfa165baa0967b1ce6ab98af8a5db9428d347",
    "0001000100010046db082f192291991641033b30000001f2ebaea273d52ed656c097774d083d47255d8862b5371dc06cf120dc55817a3b91c386ac2f67caf7941a3d01b2b67cdd9d7bbb8731124b",
]
DLMS_COSEM_TITLE = bytes.fromhex("2f19229199164103")
DLMS_COSEM_KEY = b"MYDUMMYGLOBALKEY"


def test_real_ciphered_udp_pushes_are_deciphered_whole_packed_or_in_blocks(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    """dlms-cosem's datagrams with their keys: each deciphers and authenticates with the registry's keys, then is
    refused for its content (one vendor octet-string, not an alarm push). Packed 13 to a datagram, or one cut into
    GBT blocks, the same; one byte changed fails authentication."""
    caplog.set_level(logging.WARNING, logger="hes.events.push")
    registry.add_meter("DLMSCOSEM01", host="192.0.2.10", port=4059, security=MeterSecurity(
        "hls-gmac", None, DLMS_COSEM_TITLE, DLMS_COSEM_KEY, DLMS_COSEM_KEY), who="test")
    datagrams = [bytes.fromhex(text) for text in DLMS_COSEM_UDP_PUSHES]
    first = WrapperFrame.decode(datagrams[0])[0]
    blocks = [WrapperFrame(1, 1, b.encode()).encode() for b in split_into_blocks(first.apdu, 16, window=63)]
    forged = datagrams[0][:-1] + bytes((datagrams[0][-1] ^ 1,))

    async def body() -> None:
        listener = PushListener(PushHandler(registry))
        await listener.start()
        try:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", listener.bound_port))
            try:
                for datagram in [*datagrams, b"".join(datagrams), *blocks, forged]:
                    transport.sendto(datagram)
                    await asyncio.sleep(0.01)  # UDP on loopback keeps order; the pauses keep the socket buffer small
            finally:
                transport.close()
            await wait_for(lambda: listener.rejected == 13 + 13 + 1 + 1, "every push was judged")
            assert listener.accepted == 0 and listener.intake.pending() == 0
        finally:
            await listener.stop()

    run(body)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert sum("DataNotification body is not a structure" in m for m in dropped) == 27, dropped[:3]
    assert sum("meter DLMSCOSEM01: push fails authentication" in m for m in dropped) == 1
    assert len(dropped) == 28


def test_any_datagram_is_taken_or_dropped_with_a_line_never_an_error(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Random datagrams, many of them wrapper PDUs around random GBT blocks (with and without LLC): nothing escapes
    as an error, nothing is stored."""
    caplog.set_level(logging.WARNING, logger="hes.events.push")
    rng = random.Random(15)

    def datagram() -> bytes:
        kind = rng.randrange(3)
        if kind == 0:
            return rng.randbytes(rng.randrange(0, 40))
        block = bytes((0xE0, rng.choice((0x00, 0x40, 0x80, 0xC0)), 0, rng.randrange(1, 4), 0, 0))
        payload = block + bytes((rng.randrange(0, 30),)) + rng.randbytes(rng.randrange(0, 30))
        if kind == 2:
            payload = b"\xe6\xe7\x00" + payload
        return WrapperFrame(1, 1, payload).encode()[: rng.randrange(4, 60)]

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            intake = _DatagramIntake(f.listener)
            for _ in range(200):
                intake.datagram_received(datagram(), ("127.0.0.1", 40000 + rng.randrange(3)))
            await wait_for(lambda: not f.listener._tasks, "every push handled")
            assert f.listener.accepted == 0

    run(body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
