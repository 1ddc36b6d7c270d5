"""PLC/RF link model: latency and jitter, loss, unreachable windows, all seeded and changeable while running."""

from __future__ import annotations

import asyncio
import statistics
from datetime import datetime, timedelta

import pytest

from protocols.errors import TransportError
from simulators.clock import FieldClock
from simulators.links import LinkLost, LinkModel, LinkSettingsError
from tests.fieldtime import EPOCH
from tests.simulators.test_transport import run


def test_presets_plc_is_seconds_rf_is_sub_second() -> None:
    plc_link, rf_link = LinkModel.plc(seed=1, name="m1"), LinkModel.rf(seed=1, name="m1")
    plc = [plc_link.draw_latency(100) for _ in range(2000)]
    rf = [rf_link.draw_latency(100) for _ in range(2000)]
    # PLC: 2 s +- 1 s plus 100 B at 2.4 kB/s; RF: 0.3 s +- 0.15 s plus 100 B at 12 kB/s.
    assert min(plc) >= 1.0 and max(plc) <= 3.05 and 1.95 < statistics.mean(plc) < 2.1
    assert min(rf) >= 0.15 and max(rf) < 0.46 and 0.28 < statistics.mean(rf) < 0.33
    assert len(set(plc)) == 2000


def test_latency_is_uniform_within_jitter_plus_size_over_rate() -> None:
    link = LinkModel(latency=1.0, jitter=0.5, bytes_per_second=1000.0, seed="s", name="m")
    draws = [link.draw_latency(500) for _ in range(5000)]
    assert 1.0 <= min(draws) < 1.05 and 1.95 < max(draws) <= 2.0  # [0.5, 1.5] + 0.5 s for 500 bytes
    assert statistics.mean(draws) == pytest.approx(1.5, abs=0.02)
    still = LinkModel(latency=0.2, seed="s", name="m")
    assert {still.draw_latency(10_000) for _ in range(10)} == {0.2}


def test_same_seed_same_link_other_seed_or_meter_other_link() -> None:
    def sample(seed: int, name: str) -> list[float]:
        link = LinkModel.plc(seed=seed, name=name)
        return [link.draw_latency(64) for _ in range(20)]

    assert sample(1, "a") == sample(1, "a")
    assert sample(1, "a") != sample(2, "a")
    assert sample(1, "a") != sample(1, "b")


def test_carry_sleeps_field_latency_scaled_to_wall_time() -> None:
    # 2 s of field latency at scale 20 is 0.1 s of wall time.
    clock = FieldClock(EPOCH, scale=20.0)
    link = LinkModel(latency=2.0, seed=0, name="m")

    async def body() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):
            await link.carry(clock, 50)
        elapsed = loop.time() - started
        assert 0.3 <= elapsed < 3.0  # slept the scaled latency, not the 6 s of field time
        assert link.stats.carried == 3 and link.stats.field_seconds == pytest.approx(6.0)

    run(body)


def test_loss_rate_is_the_configured_probability() -> None:
    clock = FieldClock(EPOCH, scale=0.0)  # frozen: no sleeping at all
    link = LinkModel(latency=1.0, loss=0.1, seed=4, name="m")

    async def body() -> None:
        lost = 0
        for _ in range(3000):
            try:
                await link.carry(clock, 20)
            except LinkLost as exc:
                assert not exc.unreachable and exc.retryable
                lost += 1
        assert 240 < lost < 360
        assert link.stats.lost == lost and link.stats.carried == 3000 - lost

    run(body)


def test_the_link_layer_retries_a_lost_transmission() -> None:
    clock = FieldClock(EPOCH, scale=0.0)
    link = LinkModel(latency=1.0, loss=0.3, retries=2, seed=4, name="m")

    async def body() -> None:
        lost = 0
        for _ in range(3000):
            try:
                await link.carry(clock, 20)
            except LinkLost as exc:
                assert "3 attempts" in str(exc)
                lost += 1
        # An APDU is lost only when all three transmissions are: 0.3 ** 3 = 2.7 %.
        assert 45 < lost < 120
        assert link.stats.carried == 3000 - lost
        # Every lost transmission is counted, and each took its latency.
        assert link.stats.lost > 3 * lost
        assert link.stats.field_seconds == pytest.approx(link.stats.carried + link.stats.lost)

    run(body)
    presets = (LinkModel.plc(), LinkModel.rf())
    assert [p.retries for p in presets] == [3, 3]
    for bad in (-1, 16):
        with pytest.raises(LinkSettingsError):
            LinkModel(latency=1.0, retries=bad)


def test_lost_apdu_is_known_only_after_its_time_in_flight() -> None:
    clock = FieldClock(EPOCH, scale=10.0)
    link = LinkModel(latency=1.0, loss=1.0, seed=0, name="m")

    async def body() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LinkLost, match="lost"):
            await link.carry(clock, 10)
        assert loop.time() - started >= 0.09

    run(body)


def test_unreachable_window_refuses_at_once_then_passes_after_it() -> None:
    clock = FieldClock(EPOCH, scale=3600.0)  # an hour of field time per wall second
    link = LinkModel.rf(seed=2, name="m")
    link.loss = 0.0
    link.add_unreachable(EPOCH - timedelta(minutes=1), timedelta(minutes=30))

    async def body() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LinkLost) as caught:
            await link.carry(clock, 10)
        assert caught.value.unreachable and isinstance(caught.value, TransportError)
        assert loop.time() - started < 0.05  # no waiting for an unreachable meter
        assert not link.reachable(clock.now())
        assert link.reachable(EPOCH + timedelta(minutes=30))
        await asyncio.sleep(0.5)  # 30 field minutes later: the window is over
        await link.carry(clock, 10)
        assert link.stats.unreachable == 1 and link.stats.carried == 1

    run(body)


def test_window_opening_while_the_apdu_is_in_flight_loses_it() -> None:
    clock = FieldClock(EPOCH, scale=10.0)
    link = LinkModel(latency=1.0, seed=0, name="m")
    link.add_unreachable(EPOCH + timedelta(seconds=0.5), EPOCH + timedelta(hours=1))

    async def body() -> None:
        with pytest.raises(LinkLost) as caught:
            await link.carry(clock, 10)
        assert caught.value.unreachable

    run(body)


def test_settings_change_while_running() -> None:
    clock = FieldClock(EPOCH, scale=0.0)
    link = LinkModel(latency=1.0, seed=0, name="m")

    async def body() -> None:
        await link.carry(clock, 10)
        link.loss = 1.0
        with pytest.raises(LinkLost):
            await link.carry(clock, 10)
        link.loss = 0.0
        link.add_unreachable(EPOCH, EPOCH + timedelta(days=1))
        with pytest.raises(LinkLost):
            await link.carry(clock, 10)
        link.clear_unreachable()
        link.latency = 5.0
        await link.carry(clock, 10)
        assert link.stats.field_seconds == pytest.approx(1.0 + 1.0 + 5.0)

    run(body)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(LinkSettingsError):
        LinkModel(latency=-1.0)
    with pytest.raises(LinkSettingsError):
        LinkModel(latency=1.0, loss=1.5)
    with pytest.raises(LinkSettingsError):
        LinkModel(latency=1.0, bytes_per_second=0)
    link = LinkModel(latency=1.0)
    with pytest.raises(LinkSettingsError, match="aware"):
        link.add_unreachable(datetime(2026, 1, 1), timedelta(hours=1))  # naive: the mistake under test
    with pytest.raises(LinkSettingsError, match="before it starts"):
        link.add_unreachable(EPOCH, EPOCH - timedelta(hours=1))
    link.jitter = -2.0
    with pytest.raises(LinkSettingsError):
        link.validate()
