"""Commands as orders against the simulated field on loopback: disconnect, reconnect, clock sync, failures.

Every test runs on SQLite and on PostgreSQL (the ``registry`` fixture). The field runs in a thread
of its own (``FieldThread``) so the same helper serves async calls, the CLI runner and subprocesses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.commands import CommandResult, Commands
from hes.db.counters import counter_state
from hes.db.models import AuditEntry, Order
from hes.registry import Registry
from hes.session import Timeouts
from protocols.cosem import ControlMode, ControlState
from simulators.clock import FieldClock
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH

__all__ = ["DC_METER", "FIELD_NOW", "PINNED_FIELD_ENV", "FieldThread", "P2P_HDLC", "P2P_WRAPPER", "SEED", "free_port",
           "orders_of"]

T = TypeVar("T")

SEED = 11
#: The field's frozen instant: a weekday morning four days after the pinned epoch (2024-03-05T10:07:30Z by default).
FIELD_NOW = EPOCH + timedelta(days=4, hours=10, minutes=7, seconds=30)
#: For the command line beside a field frozen at a pinned instant: the CLI's head-end reads the wall clock,
#: so the DC's clock would be far off at every contact (a WARN). Those tests leave the DC clock to the
#: checks made for it (tests/hes/test_dcsync.py), where the head-end's clock is the field's.
PINNED_FIELD_ENV = {"HES_CONCENTRATOR_CLOCK_EVERY": "off"}
# With seed 11 these three use HLS-GMAC (checked in ``field``): counters and ciphering are exercised.
DC_METER = "SIM000100001"
P2P_WRAPPER = "P2P000000000"
P2P_HDLC = "P2P000000001"
FAST = Timeouts(connect=2.0, read=2.0, release=1.0, retries=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FieldThread:
    """A simulated field served by an event loop in a background thread, frozen at ``FIELD_NOW``."""

    def __init__(self, options: FleetOptions, now: datetime = FIELD_NOW) -> None:
        self.fleet = Fleet(options, clock=FieldClock(now, 0.0))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="field", daemon=True)

    def call(self, coroutine: Awaitable[T], timeout: float = 10.0) -> T:
        async def wrap() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def __enter__(self) -> FieldThread:
        self.thread.start()
        self.call(self.fleet.start())
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.call(self.fleet.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def write_manifest(self, path: Path) -> Path:
        self.fleet.write_manifest(path)
        return path


def small_field(**changes: object) -> FleetOptions:
    base = FleetOptions(concentrators=1, meters_per_dc=3, p2p=2, seed=SEED, schedule=False, plc_latency=0.0,
                        loss=0.0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def field(tmp_path: Path, registry: Registry) -> Iterator[FieldThread]:
    with FieldThread(small_field()) as running:
        for serial in (DC_METER, P2P_WRAPPER, P2P_HDLC):
            assert running.fleet.security(serial).policy == "hls-gmac"
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def commands_for(registry: Registry, field: FieldThread, **kwargs: object) -> Commands:
    return Commands(registry, who="tester", timeouts=FAST, now=field.fleet.clock.now, **kwargs)  # type: ignore[arg-type]


def relay_state(field: FieldThread, serial: str) -> ControlState:
    """The simulated meter's relay now (a call, so checks before and after an order are independent)."""
    return field.fleet.meter(serial).relay.control_state


def output_on(field: FieldThread, serial: str) -> bool:
    return field.fleet.meter(serial).relay.output_state


def run(call: Callable[[], Awaitable[T]], limit: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(limit):
            return await call()

    return asyncio.run(main())


def orders_of(registry: Registry, serial: str) -> list[Order]:
    with Session(registry.engine) as db:
        return list(db.scalars(select(Order).where(Order.meter_serial == serial).order_by(Order.id)))


def audit(registry: Registry) -> list[AuditEntry]:
    with Session(registry.engine) as db:
        return list(db.scalars(select(AuditEntry).where(AuditEntry.what.contains("(order ")).order_by(AuditEntry.id)))


def check_recorded(registry: Registry, result: CommandResult) -> Order:
    """The order is stored with the result returned, and one audit line names it."""
    order = next(o for o in orders_of(registry, result.serial) if o.order_number == result.order_number)
    assert (order.state, order.command, order.requested_by) == (result.state, result.command, "tester")
    assert order.observations == result.observations and order.reason == result.reason
    assert order.started_at is not None and order.finished_at is not None
    lines = [a for a in audit(registry) if result.order_number in a.what]
    assert len(lines) == 1 and lines[0].who == "tester" and lines[0].result.startswith(result.state)
    return order


# --- disconnect and reconnect --------------------------------------------------------------------------


@pytest.mark.parametrize("serial", [P2P_WRAPPER, P2P_HDLC])
def test_disconnect_and_reconnect_a_point_to_point_meter(registry: Registry, field: FieldThread, serial: str) -> None:
    commands = commands_for(registry, field)
    assert relay_state(field, serial) is ControlState.CONNECTED

    off = run(lambda: commands.disconnect(serial))
    assert (off.state, off.reason, off.observations) == ("EXE", None, None)
    assert relay_state(field, serial) is ControlState.DISCONNECTED and not output_on(field, serial)
    assert off.values["control_state"] == "disconnected" and off.values["output_state"] is False
    check_recorded(registry, off)

    on = run(lambda: commands.reconnect(serial))
    assert on.state == "EXE", on.detail
    assert relay_state(field, serial) is ControlState.CONNECTED and output_on(field, serial)
    assert on.values["control_state"] == "connected" and on.values["output_state"] is True
    check_recorded(registry, on)
    assert on.order_number != off.order_number
    # The counters used were reserved first and the meter's last one is kept for the replay check.
    state = counter_state(registry.engine, serial, 1)
    assert state is not None and state[1] is not None and state[0] > 1


def test_disconnect_and_reconnect_a_dc_meter_through_the_gateway(registry: Registry, field: FieldThread) -> None:
    commands = commands_for(registry, field)
    meter = field.fleet.meter(DC_METER)
    assert registry.target_for(DC_METER).route.__class__.__name__ == "ViaConcentrator"

    off = run(lambda: commands.disconnect(DC_METER))
    assert off.state == "EXE", off.detail
    assert relay_state(field, DC_METER) is ControlState.DISCONNECTED
    # The meter itself opened its relay: the window is in its own history (no energy recorded meanwhile).
    opened = meter.windows
    assert opened and opened[-1][1] is None
    on = run(lambda: commands.reconnect(DC_METER))
    assert on.state == "EXE", on.detail
    assert relay_state(field, DC_METER) is ControlState.CONNECTED and meter.windows[-1] == (opened[-1][0], FIELD_NOW)
    for result in (off, on):
        check_recorded(registry, result)
    dc = registry.show_concentrator("DC0001")
    assert dc.reachable is True and dc.last_contact is not None


def test_reconnect_that_needs_the_customer_is_a_warning(registry: Registry, field: FieldThread) -> None:
    # Control mode 1: remote_reconnect only arms the relay (transition d); the customer closes it.
    meter = field.fleet.meter(DC_METER)
    meter.relay.control_mode = ControlMode.MODE_1
    commands = commands_for(registry, field)
    assert run(lambda: commands.disconnect(DC_METER)).state == "EXE"

    on = run(lambda: commands.reconnect(DC_METER))
    assert on.state == "WARN" and on.reason is None
    assert on.observations is not None and "manual reconnection" in on.observations
    assert "control mode 1" in on.observations
    assert on.values["control_state"] == "ready_for_reconnection" and on.values["output_state"] is False
    assert meter.relay.control_state is ControlState.READY_FOR_RECONNECTION
    check_recorded(registry, on)


def test_a_relay_that_refuses_the_order_fails_it(registry: Registry, field: FieldThread) -> None:
    # Control mode 0: the disconnector cannot be operated; the meter refuses the method.
    field.fleet.meter(P2P_WRAPPER).relay.control_mode = ControlMode.NONE
    result = run(lambda: commands_for(registry, field).disconnect(P2P_WRAPPER))
    assert result.state == "FAIL" and result.reason is not None
    assert "ACTION IC 70 0.0.96.3.10.255 method 1" in result.reason and "other-reason" in result.reason
    check_recorded(registry, result)


# --- clock sync ---------------------------------------------------------------------------------------


def test_clock_sync_corrects_a_drifting_meter(registry: Registry, field: FieldThread) -> None:
    meter = field.fleet.meter(P2P_HDLC)
    meter.config = dataclasses.replace(meter.config, drift_seconds_per_day=40.0)
    field.fleet.clock.jump(timedelta(days=2))  # 80 s fast now
    commands = commands_for(registry, field)

    result = run(lambda: commands.clock_sync(P2P_HDLC, tolerance=10))
    assert result.state == "EXE", result.detail
    assert result.values["deviation_seconds"] == pytest.approx(80.0, abs=0.5)
    assert result.values["set"] is True and abs(result.values["residual_seconds"]) <= 1.0
    assert result.values["clock_deviation_minutes"] == -60  # the meter's time zone was kept
    assert abs((meter.meter_time() - field.fleet.clock.now()).total_seconds()) <= 1.0
    check_recorded(registry, result)
    order = orders_of(registry, P2P_HDLC)[-1]
    # The counters reserved for the order, and the highest it used, are kept with it.
    start, limit = order.parameters["counters"]
    assert order.parameters["tolerance"] == 10 and start <= order.parameters["counters_used"] < limit

    again = run(lambda: commands.clock_sync(P2P_HDLC, tolerance=10))
    assert again.state == "EXE" and again.values["set"] is False
    assert "within 10 s" in again.detail


def test_clock_within_tolerance_is_left_alone(registry: Registry, field: FieldThread) -> None:
    meter = field.fleet.meter(DC_METER)
    meter.set_time(field.fleet.clock.now() + timedelta(seconds=5))
    result = run(lambda: commands_for(registry, field).clock_sync(DC_METER, tolerance=10))
    assert result.state == "EXE" and result.values["set"] is False
    assert result.values["deviation_seconds"] == pytest.approx(5.0, abs=0.5)
    assert (meter.meter_time() - field.fleet.clock.now()).total_seconds() == pytest.approx(5.0, abs=0.5)


def test_a_clock_that_does_not_take_the_time_is_a_warning(registry: Registry, field: FieldThread,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    meter = field.fleet.meter(P2P_WRAPPER)
    meter.set_time(field.fleet.clock.now() + timedelta(minutes=5))
    # The meter acknowledges the set but keeps its time (a faulty RTC).
    monkeypatch.setattr(type(meter), "set_time", lambda self, new_time: None)
    result = run(lambda: commands_for(registry, field).clock_sync(P2P_WRAPPER))
    assert result.state == "WARN" and result.observations is not None
    assert "still off by +300.0 s" in result.observations
    check_recorded(registry, result)


# --- failures ----------------------------------------------------------------------------------------------


def test_a_decommissioned_meter_fails_without_contact(registry: Registry, field: FieldThread) -> None:
    registry.decommission(P2P_WRAPPER)
    result = run(lambda: commands_for(registry, field).disconnect(P2P_WRAPPER))
    assert result.state == "FAIL" and result.reason is not None and "decommissioned" in result.reason
    assert not result.retryable
    assert counter_state(registry.engine, P2P_WRAPPER, 1) is None  # no counter was even reserved
    assert field.fleet.meter(P2P_WRAPPER).relay.control_state is ControlState.CONNECTED
    check_recorded(registry, result)


def test_an_unknown_meter_fails_and_is_recorded(registry: Registry, field: FieldThread) -> None:
    result = run(lambda: commands_for(registry, field).reconnect("NOPE0001"))
    assert result.state == "FAIL" and result.reason == "meter NOPE0001 is not registered (a retry will not help)"
    check_recorded(registry, result)


def test_a_meter_decommissioned_in_the_field_fails(registry: Registry, field: FieldThread) -> None:
    meter = field.fleet.meter(P2P_HDLC)
    meter.config = dataclasses.replace(meter.config, decommissioned=True)
    result = run(lambda: commands_for(registry, field).clock_sync(P2P_HDLC))
    assert result.state == "FAIL" and result.reason is not None and "not commissioned" in result.reason
    check_recorded(registry, result)


def test_an_unreachable_point_to_point_meter_fails(registry: Registry, field: FieldThread) -> None:
    registry.add_meter("P2PDOWN", host="127.0.0.1", port=free_port())  # nothing listens there
    result = run(lambda: commands_for(registry, field).disconnect("P2PDOWN"))
    assert result.state == "FAIL" and result.retryable
    assert result.reason is not None and "refused" in result.reason
    check_recorded(registry, result)


def test_a_concentrator_down_fails_the_order(registry: Registry, field: FieldThread) -> None:
    field.fleet.set_outage("DC0001", True)
    result = run(lambda: commands_for(registry, field).disconnect(DC_METER))
    assert result.state == "FAIL" and result.retryable and result.reason
    assert result.reason.startswith("concentrator DC0001 is unreachable: ")
    assert field.fleet.meter(DC_METER).relay.control_state is ControlState.CONNECTED
    check_recorded(registry, result)
    field.fleet.set_outage("DC0001", False)
    # The same checks as every order: a DC that just failed is not contacted again before its recheck ...
    again = run(lambda: commands_for(registry, field).disconnect(DC_METER))
    assert again.state == "FAIL" and again.reason is not None and "not contacted (tried again from" in again.reason
    check_recorded(registry, again)
    # ... unless the operator asks for it (--recheck-dc).
    assert run(lambda: commands_for(registry, field, recheck_dc=True).disconnect(DC_METER)).state == "EXE"


def test_a_meter_unreachable_behind_its_concentrator_fails(registry: Registry, field: FieldThread) -> None:
    now = field.fleet.clock.now()
    field.fleet.set_unreachable(DC_METER, now - timedelta(hours=1), now + timedelta(hours=1))
    commands = Commands(registry, who="tester", timeouts=Timeouts(connect=2.0, read=0.3, release=0.3, retries=1),
                        now=field.fleet.clock.now)
    result = run(lambda: commands.reconnect(DC_METER))
    assert result.state == "FAIL" and result.retryable
    assert result.reason is not None and result.reason.startswith(
        f"meter {DC_METER} unreachable from concentrator DC0001: no answer through the gateway")
    check_recorded(registry, result)
    # The DC itself answered: it stays reachable.
    assert registry.show_concentrator("DC0001").reachable is not False
