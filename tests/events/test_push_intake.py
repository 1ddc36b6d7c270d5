"""Pushes the way real meters send them: over UDP, as general-block-transfer blocks, behind a HAN port's
LLC header, ciphered encryption-only; each through the one handler and its replay rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hes.events.push import PushIntake
from hes.registry import Registry
from protocols.errors import DecodeError
from protocols.hdlc import LLC_RESPONSE
from protocols.security import SecurityControlField
from protocols.wrapper import WrapperFrame
from protocols.xdlms.gbt import split_into_blocks
from simulators.events import EventCode, EventLog
from tests.events.helpers import CIPHERED_P2P, DC_METER, events_of, push_field, run, wait_for


@pytest.mark.parametrize("serial", [CIPHERED_P2P, DC_METER])
def test_a_udp_push_reaches_the_events_table_once(registry: Registry, tmp_path: Path, serial: str) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.sender.transport = "udp"
            event = await f.sender.tamper(serial, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the UDP push was taken")
            stored = events_of(registry, serial)
            assert [(e.log_obis, e.event_code, e.event_time) for e in stored] == [
                (str(EventLog.FRAUD.obis), 44, event.when)]
            # The same datagram again (UDP may deliver twice): a replay, refused; still one event.
            apdu = await f.sender.push_event(serial, event)
            await wait_for(lambda: f.listener.accepted == 2, "the second push was taken")
            (frame,) = f.sender.frames(serial, apdu)
            await f.sender.send_datagram(frame)
            await wait_for(lambda: f.listener.rejected == 1, "the repeated datagram was refused")
            assert len(events_of(registry, serial)) == 1

    run(body)


@pytest.mark.parametrize(("transport", "llc"), [("tcp", False), ("udp", False), ("udp", True)])
def test_a_gbt_push_is_reassembled_and_stored_once(registry: Registry, tmp_path: Path, transport: str,
                                                   llc: bool) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.sender.transport, f.sender.block_size, f.sender.llc = transport, 16, llc  # type: ignore[assignment]
            event = await f.sender.tamper(CIPHERED_P2P, EventCode.TERMINAL_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the block-transferred push was taken")
            assert [(e.event_code, e.event_time) for e in events_of(registry, CIPHERED_P2P)] == [(40, event.when)]
            assert f.listener.intake.pending() == 0
            # Every block sent again: the stream is whole again, and refused as a replay.
            apdu = await f.sender.push_event(CIPHERED_P2P, event)
            await wait_for(lambda: f.listener.accepted == 2, "the second push was taken")
            frames = f.sender.frames(CIPHERED_P2P, apdu)
            assert len(frames) > 3
            for frame in frames:
                await f.sender.send_datagram(frame) if transport == "udp" else await f.sender.send_raw(
                    WrapperFrame.decode(frame)[0].apdu)
            await wait_for(lambda: f.listener.rejected == 1, "the repeated stream was refused")
            assert len(events_of(registry, CIPHERED_P2P)) == 1 and f.listener.intake.pending() == 0

    run(body)


def test_an_encryption_only_push_is_refused_unless_its_device_type_accepts_it(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hes.events.push")

    async def body() -> str:
        async with push_field(registry, tmp_path) as f:
            f.sender.security_control = SecurityControlField(authenticated=False, encrypted=True)
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.rejected == 1, "the encryption-only push was refused")
            assert events_of(registry, CIPHERED_P2P) == []
            # The device type says its meters push encryption-only: the same kind of push is taken.
            kind = registry.target_for(CIPHERED_P2P).device_type
            shipped = Path(__file__).parents[2] / "hes" / "devicetypes" / f"{kind.name}.json"
            document = json.loads(shipped.read_text(encoding="utf-8"))
            document["push"] = {"accept_encryption_only": True}
            changed = tmp_path / "type.json"
            changed.write_text(json.dumps(document), encoding="utf-8")
            registry.add_device_type(changed, who="test")
            assert registry.target_for(CIPHERED_P2P).device_type.push.accept_encryption_only
            await f.sender.tamper(CIPHERED_P2P, EventCode.TERMINAL_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the encryption-only push was taken")
            assert [e.event_code for e in events_of(registry, CIPHERED_P2P)] == [40]
            # A forgery: anyone can write an encryption-only push (no tag) with the highest counter. It deciphers
            # to noise, is refused, and does not raise the replay floor: the meter's next push is taken.
            title = f.fleet.meter(CIPHERED_P2P).config.system_title
            assert title is not None
            forged = b"\xdb\x08" + title + b"\x2d\x20\xff\xff\xff\xff" + bytes(range(40))
            await f.sender.send_raw(forged)
            await wait_for(lambda: f.listener.rejected == 2, "the forgery was refused")
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 2, "the next genuine push was taken")
            assert sorted(e.event_code for e in events_of(registry, CIPHERED_P2P)) == [40, 44]
            return kind.name

    name = run(body)
    line, _forgery = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert (f"meter {CIPHERED_P2P}: push not authenticated (security control 0x20); device type {name} does not "
            "accept encryption-only pushes") in line


def test_garbage_datagrams_are_dropped_with_one_line_and_lose_nothing(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hes.events.push")

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.sender.transport = "udp"
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the good push was taken")
            good = WrapperFrame(1, 1, b"\x0f\x00").encode()
            for data in (b"\x00\x01\x00\x01\x00\x01\x00\x20abc",  # a wrapper PDU cut short
                         b"garbage that is no wrapper PDU",
                         good[:-1],
                         WrapperFrame(1, 1, bytes.fromhex("E0C00005000003AABBCC")).encode()):  # block 5 alone
                await f.sender.send_datagram(data)
            await wait_for(lambda: f.listener.rejected == 4, "every bad datagram was dropped")
            assert [e.event_code for e in events_of(registry, CIPHERED_P2P)] == [44]
            await f.sender.tamper(CIPHERED_P2P, EventCode.TERMINAL_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 2, "a good push after them was taken")

    run(body)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 4 and all("(UDP)" in line and "\n" not in line for line in dropped)
    assert any("block 5 without the blocks before it" in line for line in dropped)


def test_an_incomplete_block_stream_is_dropped_after_its_timeout(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hes.events.push")
    now = [0.0]

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.listener.intake = PushIntake(timeout=30.0, clock=lambda: now[0])
            f.sender.transport, f.sender.block_size = "udp", 16  # type: ignore[assignment]
            # Only the first blocks of a push arrive; its last block never comes.
            partial = f.sender.frames(CIPHERED_P2P, bytes(100))[:-1]
            assert len(partial) == 6
            for frame in partial:
                await f.sender.send_datagram(frame)
            await wait_for(lambda: f.listener.intake.last_block("127.0.0.1", 1) == 6, "the open stream is kept")
            now[0] += 29.0
            f.listener.intake.expire()
            assert f.listener.intake.pending() == 1
            now[0] += 1.0
            f.listener.intake.expire()
            assert f.listener.intake.pending() == 0 and f.listener.intake.dropped == 1
            assert f.listener.accepted == 0 and f.listener.rejected == 0  # nothing reached the handler
            # A whole push from the same meter afterwards is taken.
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the next push was taken")

    run(body)
    (line,) = [r.getMessage() for r in caplog.records if "stream dropped" in r.getMessage()]
    assert "no block for 30 s" in line and "wPort 1" in line and "at block 6" in line


def test_the_intake_bounds_what_it_keeps(caplog: pytest.LogCaptureFixture) -> None:
    """Pure: a stream past ``max_size`` is dropped, the oldest of too many senders goes, a sender's new stream
    replaces its unfinished one, a block sent twice is taken once, the LLC header goes."""
    caplog.set_level(logging.WARNING, logger="hes.events.push")
    intake = PushIntake(max_size=40, max_streams=2, clock=lambda: 0.0)
    blocks = [b.encode() for b in split_into_blocks(bytes(range(100)), 16, window=63, receive_window=0)]
    assert intake.take(blocks[0], "a", 1) is None and intake.take(blocks[1], "a", 1) is None
    assert intake.take(blocks[1], "a", 1) is None and intake.last_block("a", 1) == 2  # again: taken once
    assert intake.take(blocks[2], "a", 1) is None and intake.pending() == 0  # 48 bytes > 40: dropped
    intake = PushIntake(max_streams=2, clock=lambda: 0.0)
    for host in ("a", "b", "c"):
        assert intake.take(blocks[0], host, 1) is None
    assert intake.pending() == 2 and intake.last_block("a", 1) is None  # the oldest went
    assert intake.take(blocks[1], "b", 1) is None and intake.take(blocks[0], "b", 1) is None
    assert intake.last_block("b", 1) == 1  # a new stream replaced the unfinished one
    whole = None
    for block in blocks:
        whole = intake.take(LLC_RESPONSE + block, "d", 7)
    assert whole == bytes(range(100))
    assert intake.take(LLC_RESPONSE + b"\x0f\x00", "d", 7) == b"\x0f\x00"
    reasons = [r.getMessage() for r in caplog.records]
    assert any("larger than 40 bytes" in m for m in reasons)
    assert any("more than 2 streams pending" in m for m in reasons)
    assert any("a new stream began at block 1" in m for m in reasons)
    with pytest.raises(DecodeError, match="block 3 where 2 was expected"):
        intake.take(blocks[0], "e", 1)
        intake.take(blocks[2], "e", 1)


def test_a_quiet_senders_open_stream_is_swept_without_another_push(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.listener.intake.timeout = 0.3
            f.sender.transport, f.sender.block_size = "udp", 16  # type: ignore[assignment]
            for frame in f.sender.frames(CIPHERED_P2P, bytes(100))[:-1]:
                await f.sender.send_datagram(frame)
            await wait_for(lambda: f.listener.intake.last_block("127.0.0.1", 1) == 6, "the open stream is kept")
            await wait_for(lambda: f.listener.intake.pending() == 0, "the sweep dropped it", limit=5)
            assert f.listener.intake.dropped == 1

    run(body)
