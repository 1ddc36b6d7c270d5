"""The optical line: 7E1 in software on a pty, mode E sign-on against the simulated port, silent and garbled devices."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import tty
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hes.probe.serial_link import OpticalLine, SignOnFailed, add_even_parity, strip_even_parity
from protocols.iec62056_21 import IdentificationMessage
from simulators.clock import FieldClock
from simulators.counters import MemoryCounterStore
from simulators.meter import MeterConfig, SimulatedMeter
from simulators.optical import OpticalPort, PortPhase, with_even_parity
from tests.fieldtime import EPOCH


def run(body: Callable[[], Awaitable[None]], seconds: float = 20.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await body()

    asyncio.run(bounded())


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@given(st.binary(max_size=64).map(lambda b: bytes(x & 0x7F for x in b)))
def test_parity_agrees_with_the_simulated_port_and_round_trips(chars: bytes) -> None:
    line = add_even_parity(chars)
    assert line == with_even_parity(chars)
    assert strip_even_parity(line) == (chars, None)


def test_a_byte_with_odd_parity_is_found() -> None:
    assert add_even_parity(b"/?!\r\n") == bytes((0xAF, 0x3F, 0x21, 0x8D, 0x0A))
    assert strip_even_parity(b"\xaf\x3f\x20") == (b"/?", 2)


def test_parity_is_done_in_software_on_a_pty_only(pty_pair: tuple[int, str]) -> None:
    assert OpticalLine(pty_pair[1]).software_parity
    assert not OpticalLine("/dev/ttyUSB0").software_parity
    assert not OpticalLine(pty_pair[1], parity="uart").software_parity
    assert OpticalLine("/dev/ttyUSB0", parity="software").software_parity


def test_a_silent_device_gets_the_sign_on_again_then_one_clear_error(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair

    async def body() -> None:
        line = OpticalLine(path, timeout=0.2, retries=1)
        with pytest.raises(SignOnFailed) as failed:
            await line.sign_on()
        await line.aclose()
        assert str(failed.value) == (f"{path}: no answer to the sign-on (2 tries, 0.2 s each): is the head on the "
                                     "device's optical port?")
        assert line.sign_on_repeats == 1
        assert os.read(master, 64) == with_even_parity(b"/?!\r\n") * 2

    run(body)


@pytest.mark.parametrize(("answer", "reason"), [
    (b"/HES5\\2SIM\r\n", "parity error in the device's answer (byte 0x2f)"),  # a device at 8N1
    (with_even_parity(b"/HES5SIM0001\r\n"), "sign-on failed: device HES 'SIM0001' offers no mode E"),
])
def test_a_wrong_answer_fails_the_sign_on(pty_pair: tuple[int, str], answer: bytes, reason: str) -> None:
    master, path = pty_pair

    async def body() -> None:
        line = OpticalLine(path, timeout=1.0, retries=0)
        # Answered once the sign-on is out, as a device does.
        answering = threading.Timer(0.2, os.write, (master, answer))
        answering.start()
        with pytest.raises(SignOnFailed, match=re.escape(reason)):
            await line.sign_on()
        answering.join()
        await line.aclose()

    run(body)


def test_sign_on_to_the_simulated_port_agrees_the_lower_speed() -> None:
    clock = FieldClock(EPOCH + timedelta(days=19), scale=0.0)  # 2024-03-20T00:00Z by default
    meter = SimulatedMeter(MeterConfig("OPT00000001", "probe", 0x11), clock, MemoryCounterStore())
    identification = IdentificationMessage("HES", "6", "SIM00000001")

    async def body() -> None:
        async with OpticalPort(meter, identification, clock) as port:
            line = OpticalLine(port.client_path, max_baud_rate=9600, settle=0.01)
            done = await line.sign_on()
            await line.aclose()
            assert done.identification == identification and done.baud_rate == 9600
            assert done.text == "/HES6\\2SIM00000001"
            assert line.sign_ons == [done]
            for _ in range(100):
                if port.phase is PortPhase.HDLC:
                    break
                await asyncio.sleep(0.01)
            assert port.phase is PortPhase.HDLC and port.baud_rate == 9600 and port.failures == []

    run(body)
