"""On-demand reads end to end against a simulated field on loopback, stored on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from concentrator.links import DEFAULT_DEADLINES, Deadlines
from concentrator.reachability import DEFAULT_RECHECK_AFTER
from hes.db.counters import counter_state
from hes.db.models import (
    AssetEvent,
    AuditEntry,
    Concentrator,
    EventRecord,
    IntervalValue,
    Meter,
    Order,
    RegisterReading,
)
from hes.model import ViaConcentrator
from hes.reads import ReadRequestError, ReadResult, read_meter, received_device
from hes.registry import Registry
from hes.runner import UNLIMITED, OrderRunner
from hes.session import MeterSession, Timeouts
from protocols.association import CipheringMode
from simulators.clock import FieldClock
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at, voltage_at
from simulators.events import EventLog, events_between
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH, meter_midnight, profile_state

SEED = 7
P2P_HDLC = "P2P000000001"  # HDLC over TCP, HLS-GMAC (seed 7)
P2P_WRAPPER = "P2P000000000"  # TCP wrapper, LLS
DC_METER = "SIM000100001"  # behind DC0001, HLS-GMAC, read end to end through the gateway
DC_PLAIN = "SIM000100000"  # behind DC0001, no security
DC = "DC0001"
FAST = Timeouts(connect=2.0, read=0.5, release=0.3, retries=1)
#: A local (UTC+1) day of the simulated history, two days before the field's now: 28 February 2024 00:00 to
#: 24:00 local by default.
DAY_START = meter_midnight(EPOCH) - timedelta(days=2)
DAY_END = DAY_START + timedelta(days=1)


@contextlib.asynccontextmanager
async def field(registry: Registry, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A small frozen field (1 DC with 3 meters, 2 p2p meters), registered from its manifest."""
    options = FleetOptions(concentrators=1, meters_per_dc=3, p2p=2, seed=SEED, schedule=False, loss=0.0, epoch=EPOCH)
    fleet = Fleet(options, clock=FieldClock(EPOCH, 0.0))
    async with fleet:
        manifest = tmp_path / "fleet.json"
        fleet.write_manifest(manifest)
        registry.import_manifest(manifest, who="test")
        yield fleet


def run(body: Callable[[], Awaitable[None]], limit: float = 30.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


async def read(registry: Registry, fleet: Fleet, serial: str, what: str, **kwargs: Any) -> ReadResult:
    return await read_meter(registry, serial, what, requested_by="tester", clock=fleet.clock.now, timeouts=FAST,
                            **kwargs)


def counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (IntervalValue, RegisterReading, EventRecord)
        )


def order_row(engine: Engine, number: str) -> Order:
    with Session(engine) as session:
        row = session.scalar(select(Order).where(Order.order_number == number))
        assert row is not None
        return row


def expected_profile(serial: str) -> dict[tuple[datetime, str], int]:
    first = interval_index(DAY_START)
    out: dict[tuple[datetime, str], int] = {}
    for row in profile_intervals(SEED, serial, first, first + 95):
        out[interval_end(row.interval), "1.0.1.8.0.255"] = row.a_plus
        out[interval_end(row.interval), "1.0.2.8.0.255"] = row.a_minus
    return out


# --- every read, p2p and DC meters -----------------------------------------------------------------


@pytest.mark.parametrize("serial", [P2P_HDLC, P2P_WRAPPER, DC_METER, DC_PLAIN])
def test_every_read_gives_the_simulators_values_and_stores_them_once(
    registry: Registry, engine: Engine, tmp_path: Path, serial: str
) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            now = fleet.clock.now()

            clock = await read(registry, fleet, serial, "clock")
            assert clock.state == "EXE", clock.reason
            assert clock.meter_time == fleet.meter(serial).meter_time() and clock.clock_offset == 0
            (value,) = clock.values
            assert value.kind == "clock" and value.deviation == -60 and value.time == now and value.unit == "s"

            registers = await read(registry, fleet, serial, "registers")
            assert registers.state == "EXE", registers.reason
            truth = registers_at(SEED, serial, now)
            got = {v.obis: (v.value, v.unit) for v in registers.values}
            assert got == {
                "1.0.1.8.0.255": (truth.a_plus, "Wh"), "1.0.1.8.1.255": (truth.a_plus_t1, "Wh"),
                "1.0.1.8.2.255": (truth.a_plus_t2, "Wh"), "1.0.2.8.0.255": (truth.a_minus, "Wh"),
                "1.0.32.7.0.255": (Decimal(voltage_at(SEED, serial, now)).scaleb(-1), "V"),
            }
            assert all(v.time == now and v.deviation == -60 for v in registers.values)
            assert registers.stored == 5

            profile = await read(registry, fleet, serial, "profile", start=DAY_START, end=DAY_END)
            first = interval_index(DAY_START)
            assert profile.state == profile_state(SEED, serial, first, first + 95), profile.reason
            expected = expected_profile(serial)
            got_profile = {(v.time, v.obis): v.value for v in profile.values}
            assert got_profile == expected and len(expected) == 192
            assert profile.stored == 192
            flagged = [v for v in profile.values if v.status]
            assert (profile.state == "WARN") == bool(flagged)
            if flagged:
                assert any("quality" in o for o in profile.observations)

            daily = await read(registry, fleet, serial, "daily", start=DAY_START, end=DAY_END)
            assert daily.state == "EXE", (daily.reason, daily.observations)
            midnights = (DAY_START, DAY_END)
            want: dict[tuple[datetime, str], int] = {}
            for midnight in midnights:
                r = registers_at(SEED, serial, midnight)
                want |= {(midnight, "1.0.1.8.0.255"): r.a_plus, (midnight, "1.0.1.8.1.255"): r.a_plus_t1,
                         (midnight, "1.0.1.8.2.255"): r.a_plus_t2, (midnight, "1.0.2.8.0.255"): r.a_minus}
            assert {(v.time, v.obis): v.value for v in daily.values} == want

            since = now - timedelta(days=20)
            events = await read(registry, fleet, serial, "events", start=since, end=now)
            assert events.state == "EXE", (events.reason, events.observations)
            want_events = sorted(
                (e.when, f"0.0.99.98.{int(log)}.255", int(e.code))
                for log in EventLog for e in events_between(SEED, serial, log, since, now)
            )
            assert sorted((v.time, v.obis, v.value) for v in events.values) == want_events
            assert events.stored == len(want_events)

            before = counts(engine)
            # Re-reading the same things stores nothing twice.
            again = [await read(registry, fleet, serial, "profile", start=DAY_START, end=DAY_END),
                     await read(registry, fleet, serial, "daily", start=DAY_START, end=DAY_END),
                     await read(registry, fleet, serial, "events", start=since, end=now),
                     await read(registry, fleet, serial, "registers")]
            assert [r.stored for r in again] == [0, 0, 0, 0]
            assert all(r.ok for r in again), [(r.what, r.reason) for r in again]
            assert counts(engine) == before == (192, 5 + 8, len(want_events))

            with Session(engine) as session:
                orders = session.scalars(select(Order).where(Order.meter_serial == serial)).all()
                assert len(orders) == 9 and {o.state for o in orders} <= {"EXE", "WARN"}
                assert all(o.finished_at is not None and o.requested_by == "tester" for o in orders)
                received = session.scalar(select(func.count()).select_from(AssetEvent)
                                          .where(AssetEvent.kind == "data received"))
                assert received == 9
                audits = session.scalars(select(AuditEntry).where(AuditEntry.what.contains(serial))).all()
                assert len(audits) == 9 and all(a.who == "tester" for a in audits)
                if serial.startswith("SIM"):
                    dc = session.get(Concentrator, DC)
                    assert dc is not None and dc.reachable is True and dc.last_contact == now
            if fleet.security(serial).policy == "hls-gmac":
                state = counter_state(engine, serial, 1)
                assert state is not None and state[1] is not None  # last counter received is recorded
                assert all(r.counters_used is not None and r.counters_used < state[0] for r in again)

    run(body)


def test_a_clock_deviation_beyond_tolerance_and_a_gap_give_warn(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            late = await read_meter(registry, P2P_WRAPPER, "clock", requested_by="tester", timeouts=FAST,
                                    clock=lambda: fleet.clock.now() + timedelta(minutes=5))
            assert late.state == "WARN" and late.clock_offset == -300
            assert late.observations == ("clock deviation -300 s beyond the tolerance of 60 s",)
            # Asking beyond the meter's present: the intervals not yet ended are not gaps.
            now = fleet.clock.now()
            start = now - timedelta(hours=25)
            future = await read(registry, fleet, P2P_WRAPPER, "daily", start=start, end=now + timedelta(days=3))
            # The meter's midnights from the start to now, none missing: two when now is one (the default epoch).
            midnights = [m for m in (meter_midnight(now) - timedelta(days=1), meter_midnight(now)) if m >= start]
            assert future.state == "EXE" and len(future.values) == 4 * len(midnights) >= 4
            # A DC meter that the DC could not reach keeps its data: read end to end, it is all there.
            fleet.set_unreachable(DC_PLAIN, now - timedelta(days=3), now - timedelta(days=1))
            through = await read(registry, fleet, DC_PLAIN, "profile", start=now - timedelta(hours=2), end=now)
            assert through.ok and len(through.values) == 16

    run(body)


# --- failures -----------------------------------------------------------------------------------------


def assert_failed(result: ReadResult, engine: Engine, *, reason: str, retryable: bool) -> None:
    assert result.state == "FAIL" and not result.values and result.stored == 0
    assert result.reason is not None and reason in result.reason, result.reason
    assert result.retryable is retryable
    assert ("a retry can help" if retryable else "a retry will not help") in result.reason
    row = order_row(engine, result.order_number)
    assert row.state == "FAIL" and row.reason == result.reason and row.finished_at is not None
    with Session(engine) as session:
        audit = session.scalar(select(AuditEntry).where(AuditEntry.what.contains(result.order_number)))
        assert audit is not None and audit.result == f"FAIL: {result.reason}"


def test_checks_fail_before_anything_is_contacted(registry: Registry, engine: Engine, tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            unknown = await read(registry, fleet, "NOPE0001", "registers")
            assert_failed(unknown, engine, reason="meter NOPE0001 is not registered", retryable=False)
            assert order_row(engine, unknown.order_number).meter_serial == "NOPE0001"

            registry.decommission(P2P_WRAPPER, who="test")
            opened = fleet.p2p(P2P_WRAPPER).faults.applied.copy()
            gone = await read(registry, fleet, P2P_WRAPPER, "profile", start=DAY_START, end=DAY_END)
            assert_failed(gone, engine, reason=f"meter {P2P_WRAPPER} is decommissioned", retryable=False)
            assert fleet.p2p(P2P_WRAPPER).faults.applied == opened
            assert counts(engine) == (0, 0, 0)

    run(body)


def test_dc_down_fails_then_is_not_contacted_until_rechecked(registry: Registry, engine: Engine,
                                                             tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            fleet.set_outage(DC)
            down = await read(registry, fleet, DC_METER, "registers")
            assert_failed(down, engine, reason=f"concentrator {DC} is unreachable", retryable=True)
            refused = fleet.faults(DC).applied["refuse_connections"]
            assert refused >= 1
            with Session(engine) as session:
                dc = session.get(Concentrator, DC)
                assert dc is not None and dc.reachable is False and dc.last_contact is None

            known = await read(registry, fleet, DC_PLAIN, "clock")
            assert_failed(known, engine, reason="not contacted", retryable=True)
            assert fleet.faults(DC).applied["refuse_connections"] == refused

            fleet.set_outage(DC, False)
            back = await read(registry, fleet, DC_METER, "registers", recheck_dc=True)
            assert back.state == "EXE" and back.stored == 5
            with Session(engine) as session:
                dc = session.get(Concentrator, DC)
                assert dc is not None and dc.reachable is True
            assert counts(engine) == (0, 5, 0)

            # Down again: blocked for a while, then contacted again by itself (no operator needed).
            fleet.set_outage(DC)
            assert (await read(registry, fleet, DC_PLAIN, "clock")).state == "FAIL"
            fleet.set_outage(DC, False)
            assert_failed(await read(registry, fleet, DC_PLAIN, "clock"), engine, reason="not contacted",
                          retryable=True)
            fleet.clock.jump(timedelta(seconds=DEFAULT_RECHECK_AFTER + 1))
            recovered = await read(registry, fleet, DC_PLAIN, "clock")
            assert recovered.state in ("EXE", "WARN"), recovered.reason

    run(body)


def test_meter_unreachable_behind_the_dc(registry: Registry, engine: Engine, tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            now = fleet.clock.now()
            fleet.set_unreachable(DC_METER, now - timedelta(hours=1), now + timedelta(days=1))
            result = await read(registry, fleet, DC_METER, "clock")
            assert_failed(result, engine, reason=f"meter {DC_METER} unreachable from concentrator {DC}",
                          retryable=True)
            with Session(engine) as session:
                dc = session.get(Concentrator, DC)
                assert dc is not None and dc.reachable is True  # the DC answered; its meter did not
            assert counts(engine) == (0, 0, 0)

    run(body)


def test_wrong_key_fails_with_the_reason(registry: Registry, engine: Engine, tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            manifest = json.loads((tmp_path / "fleet.json").read_text())
            for entry in manifest["meters"]:  # the registry format lists every meter there
                if entry["serial"] == P2P_HDLC:
                    entry["security"]["ak"] = "00" * 16
            wrong = tmp_path / "wrong.json"
            wrong.write_text(json.dumps(manifest))
            registry.import_manifest(wrong, who="test")
            result = await read(registry, fleet, P2P_HDLC, "registers")
            assert_failed(result, engine, reason="association rejected", retryable=False)
            assert result.reason is not None and "wrong keys" in result.reason
            assert counts(engine) == (0, 0, 0)

    run(body)


@pytest.mark.parametrize(
    ("serial", "fault", "reason"),
    [
        (P2P_HDLC, "corrupt_fcs", "no UA after 2 SNRM"),  # every frame discarded: nothing usable arrives
        (P2P_WRAPPER, "truncate_frame", "meter did not answer"),
        (P2P_WRAPPER, "exception_response", "exception-response service_not_allowed, service_not_supported"),
    ],
)
def test_field_faults_fail_and_store_nothing_twice(registry: Registry, engine: Engine, tmp_path: Path,
                                                   serial: str, fault: str, reason: str) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            good = await read(registry, fleet, serial, "registers")
            assert good.state == "EXE" and good.stored == 5
            setattr(fleet.faults(serial), fault, 1.0)
            for _ in range(2):
                bad = await read(registry, fleet, serial, "registers")
                assert bad.state == "FAIL" and bad.reason is not None and reason in bad.reason, bad.reason
                assert_failed(bad, engine, reason=reason, retryable=bad.retryable)
            assert fleet.faults(serial).applied.get(fault, 0) >= 1
            assert counts(engine) == (0, 5, 0)

    run(body)


def test_bad_requests_are_refused_before_any_order(registry: Registry, engine: Engine) -> None:
    async def body() -> None:
        with pytest.raises(ReadRequestError, match="one of clock"):
            await read_meter(registry, "X", "voltage", requested_by="t")
        with pytest.raises(ReadRequestError, match="takes no time range"):
            await read_meter(registry, "X", "clock", start=DAY_START, requested_by="t")
        with pytest.raises(ReadRequestError, match="range is empty"):
            await read_meter(registry, "X", "profile", start=DAY_END, end=DAY_START, requested_by="t")
        with pytest.raises(ReadRequestError, match="time zone"):
            await read_meter(registry, "X", "events", start=datetime(2024, 1, 1), requested_by="t")
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Order)) == 0

    run(body)


def test_concentrated_read_answers_from_the_dc_tables(registry: Registry, engine: Engine, tmp_path: Path) -> None:
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            result = await read(registry, fleet, DC_METER, "profile", start=DAY_START, end=DAY_END,
                                mode="concentrated")
            assert result.ok, result.reason
            assert {(v.time, v.obis): v.value for v in result.values} == expected_profile(DC_METER)
            state = counter_state(engine, DC, 1)  # the DC's own association ciphers: its counters are used
            assert state is not None and state[0] > 1
            # What the DC sent is kept per logical device, the DC's server counter being per LD.
            route = registry.target_for(DC_METER, mode="concentrated").route
            assert isinstance(route, ViaConcentrator)
            received = counter_state(engine, received_device(DC, route.logical_device), 1)
            assert received is not None and received[1] is not None

    run(body)


def test_concentrated_reads_of_meters_in_turn_through_one_dc(registry: Registry, engine: Engine,
                                                             tmp_path: Path) -> None:
    """The DC keeps a server invocation counter per logical device: one meter's floor must not refuse the next."""
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            for serial in (DC_METER, DC_PLAIN, "SIM000100002", DC_METER):
                result = await read(registry, fleet, serial, "profile", start=DAY_START, end=DAY_END,
                                    mode="concentrated")
                assert result.ok, f"{serial}: {result.reason}"
                assert {(v.time, v.obis): v.value for v in result.values} == expected_profile(serial)

    run(body)


# --- the default field and the default deadlines ---------------------------------------------------------------


def test_a_day_of_profile_through_a_dc_of_the_default_field_with_the_default_deadlines_is_exe(
        registry: Registry, tmp_path: Path) -> None:
    """The simulated PLC as it ships (2 s +- 1 s per APDU, 2 % of transmissions lost, 3 link retries)
    and the head-end's default PLC deadline, both sped up ten times (field time runs at 10x, each
    deadline is a tenth): a day of profile through the DC's gateway is EXE (WARN only for intervals
    the meter flagged), each value the meter's."""
    scale = 10.0
    deadlines = Deadlines(plc=DEFAULT_DEADLINES.plc / scale, rf=DEFAULT_DEADLINES.rf / scale,
                          ip=DEFAULT_DEADLINES.ip / scale)
    options = FleetOptions(concentrators=1, meters_per_dc=3, p2p=0, seed=SEED, schedule=False, epoch=EPOCH)
    fleet = Fleet(options, clock=FieldClock(EPOCH, scale))
    link = fleet.link(DC_METER)
    assert (link.latency, link.jitter, link.loss, link.retries) == (2.0, 1.0, 0.02, 3)

    async def body() -> None:
        async with fleet:
            fleet.write_manifest(tmp_path / "fleet.json")
            registry.import_manifest(tmp_path / "fleet.json", who="test")
            runner = OrderRunner(registry, requested_by="tester", deadlines=deadlines, clock=fleet.clock.now)
            for serial in (DC_METER, DC_PLAIN):
                started = fleet.clock.now()
                result = await read_meter(registry, serial, "profile", start=DAY_START, end=DAY_END,
                                          requested_by="tester", runner=runner)
                took = (fleet.clock.now() - started).total_seconds()
                # EXE, unless the meter flagged one of the day's intervals (a seeded power cut: WARN, nothing else).
                first = interval_index(DAY_START)
                assert result.state == profile_state(SEED, serial, first, first + 95), \
                    (serial, result.reason, result.observations, took)
                assert all("quality" in o for o in result.observations), result.observations
                assert {(v.time, v.obis): v.value for v in result.values} == expected_profile(serial)
                # It took as long as a real gateway read does (tens of field seconds), not a frozen field's instant.
                assert took > 15.0, took

    run(body, limit=60.0)


def _learned_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and "GET-with-list limit learned" in r.getMessage()]


def _halved_until(asked: int, cap: int) -> int:
    """Where a meter refusing lists above ``cap`` leaves the limit: halved from the first list, as the session does."""
    limit = asked
    while limit > cap:
        limit = max(1, limit // 2)
    return limit


@pytest.mark.parametrize(("serial", "overflow", "cap"), [
    (P2P_HDLC, "short", 3), (P2P_WRAPPER, "refuse", 3), (DC_METER, "short", 3), (P2P_WRAPPER, "refuse", 1),
    (P2P_HDLC, "exception", 3), (P2P_WRAPPER, "exception", 4),
])
def test_a_meter_that_caps_get_with_list_is_read_whole_and_its_limit_is_kept(
    registry: Registry, engine: Engine, tmp_path: Path, serial: str, overflow: str, cap: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A meter that answers only ``cap`` attributes of a list (short, as gurux-dlms's server does; refused as a
    whole; or an ExceptionResponse): every register EXE all the same, the limit learned once (one INFO line),
    kept, and the next read asks lists of that size straight away."""
    learned: list[list[str]] = []
    kept_limits: list[int] = []

    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            meter = fleet.meter(serial)
            meter.config = dataclasses.replace(meter.config, get_with_list_limit=cap, get_with_list_overflow=overflow)
            now = fleet.clock.now()
            first = await read(registry, fleet, serial, "registers")
            learned.append(_learned_lines(caplog))
            assert first.state == "EXE", first.reason
            truth = registers_at(SEED, serial, now)
            got = {v.obis: v.value for v in first.values}
            assert got == {"1.0.1.8.0.255": truth.a_plus, "1.0.1.8.1.255": truth.a_plus_t1,
                           "1.0.1.8.2.255": truth.a_plus_t2, "1.0.2.8.0.255": truth.a_minus,
                           "1.0.32.7.0.255": Decimal(voltage_at(SEED, serial, now)).scaleb(-1)}
            asked = meter.get_with_list_sizes[0]
            assert asked > cap
            # Short: the results it gave are the limit; refused: halved until the meter answers whole.
            expected = cap if overflow == "short" else _halved_until(asked, cap)
            with Session(engine) as session:
                kept = session.scalar(select(Meter.max_get_with_list).where(Meter.serial == serial))
            assert kept == expected
            kept_limits.append(kept)
            meter.get_with_list_sizes.clear()
            caplog.clear()
            second = await read(registry, fleet, serial, "registers")
            learned.append(_learned_lines(caplog))
            assert second.state == "EXE" and {v.obis: v.value for v in second.values} == got
            # The kept limit from the first request on: parts of ``kept`` (a part of one is a plain GET).
            parts = [min(kept, asked - start) for start in range(0, asked, kept)]
            assert meter.get_with_list_sizes == [size for size in parts if size > 1]

    with caplog.at_level(logging.INFO, logger="hes.session"):
        run(body)
    (line,), again = learned
    assert line.startswith(f"meter {serial}") and f"at most {kept_limits[0]} attributes per request" in line
    assert not again


def test_a_meter_ciphering_with_general_glo_is_read_when_its_device_type_says_so(
    registry: Registry, engine: Engine, tmp_path: Path,
) -> None:
    """A meter whose HLS-GMAC association ciphers with general-glo-ciphering (0xDB), as some makes do: its device
    type saying ``security.ciphering: general-glo`` makes the session cipher so, and every read is EXE."""
    async def body() -> None:
        async with field(registry, tmp_path) as fleet:
            meter = fleet.meter(P2P_HDLC)
            meter.config = dataclasses.replace(meter.config, ciphering="general-glo")
            assert fleet.security(P2P_HDLC).policy == "hls-gmac"
            assert MeterSession(registry.target_for(P2P_HDLC), UNLIMITED)._policy.ciphering \
                is CipheringMode.SERVICE_SPECIFIC
            kind = registry.target_for(P2P_HDLC).device_type
            document = json.loads((Path(__file__).parents[2] / "hes" / "devicetypes" / f"{kind.name}.json")
                                  .read_text(encoding="utf-8"))
            document.setdefault("security", {})["ciphering"] = "general-glo"
            changed = tmp_path / "general.json"
            changed.write_text(json.dumps(document), encoding="utf-8")
            registry.add_device_type(changed, who="test")
            target = registry.target_for(P2P_HDLC)
            assert target.device_type.ciphering == "general-glo"
            assert MeterSession(target, UNLIMITED)._policy.ciphering is CipheringMode.GENERAL
            now = fleet.clock.now()
            registers = await read(registry, fleet, P2P_HDLC, "registers")
            assert registers.state == "EXE", registers.reason
            truth = registers_at(SEED, P2P_HDLC, now)
            assert {v.obis: v.value for v in registers.values}["1.0.1.8.0.255"] == truth.a_plus
            profile = await read(registry, fleet, P2P_HDLC, "profile", start=DAY_START, end=DAY_END)
            assert profile.ok and {(v.time, v.obis): v.value for v in profile.values} == expected_profile(P2P_HDLC)

    run(body)
