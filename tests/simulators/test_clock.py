"""Field time: scaled, changeable while running, never naive."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from simulators.clock import FieldClock
from tests.fieldtime import EPOCH


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_scaled_time() -> None:
    mono = FakeMonotonic()
    clock = FieldClock(EPOCH, scale=96, monotonic=mono)
    assert clock.now() == EPOCH
    mono.t += 10
    assert clock.now() == EPOCH + timedelta(seconds=960)
    assert clock.wall_seconds(900) == pytest.approx(9.375)


def test_scale_change_and_jump_keep_time_continuous() -> None:
    mono = FakeMonotonic()
    clock = FieldClock(EPOCH, scale=2, monotonic=mono)
    mono.t += 5
    clock.set_scale(10)
    assert clock.now() == EPOCH + timedelta(seconds=10)
    mono.t += 1
    assert clock.now() == EPOCH + timedelta(seconds=20)
    clock.jump(timedelta(days=1))
    assert clock.now() == EPOCH + timedelta(days=1, seconds=20)


def test_frozen_time_and_bad_arguments() -> None:
    mono = FakeMonotonic()
    clock = FieldClock(EPOCH, scale=0, monotonic=mono)
    mono.t += 1000
    assert clock.now() == EPOCH
    assert clock.wall_seconds(900) == 0.0
    with pytest.raises(ValueError):
        FieldClock(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        FieldClock(EPOCH, scale=-1)
