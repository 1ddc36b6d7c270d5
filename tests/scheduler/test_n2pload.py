"""N2PLoad per meter against a simulated field: watermarks, gaps, reachability, DC outage, on SQLite and PostgreSQL.

The field is frozen and moved by jumps, and the DCs read their meters only when a test says so
(``read_cycle``), so every outcome has one right answer: what the meters recorded is
``simulators.energy``'s deterministic value, and it must be stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hes.db.models import Concentrator, IntervalValue, Meter, RegisterReading
from hes.registry import Registry
from hes.session import Timeouts
from scheduler.collection_models import CollectionGap, CollectionWatermark, MeterCollection
from scheduler.contract import ExecutionContext, ItemOutcome, WorkItem
from scheduler.n2pload import (
    GAP_GIVE_UP_ATTEMPTS,
    QUALITY_AFTER_GAP,
    collect_daily,
    collect_meter,
    collect_profile,
    pass_meters,
)
from simulators.clock import FieldClock
from simulators.energy import INTERVAL, interval_end, interval_index, profile_intervals, registers_at
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH, interval_floor, meter_midnight, profile_state

SEED = 11
FAST = Timeouts(connect=1.0, read=1.0, release=0.3, retries=1)
START = EPOCH - timedelta(days=1)
#: What the DCs hold when the field starts at EPOCH, and where a first pass's watermark goes.
MARK = interval_floor(EPOCH)
#: The meters' last daily row at EPOCH: their local midnight.
MIDNIGHT = meter_midnight(EPOCH)
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"


def run(body: Callable[[], Awaitable[None]], limit: float = 60.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def field(tmp_path: Path, engine: Engine, master_key: Any, epoch: datetime = EPOCH,
                **options: Any) -> AsyncIterator[tuple[Fleet, Registry, ExecutionContext]]:
    """A frozen field whose DCs read only on demand, registered in a registry on the field's clock."""
    settings: dict[str, Any] = {"concentrators": 1, "meters_per_dc": 2, "p2p": 1, "seed": SEED, "schedule": False,
                                "loss": 0.0, "epoch": epoch}
    settings.update(options)
    fleet = Fleet(FleetOptions(**settings), clock=FieldClock(epoch, 0.0))
    async with fleet:
        registry = Registry(engine, master_key, clock=fleet.clock.now)
        manifest = tmp_path / "fleet.json"
        fleet.write_manifest(manifest)
        registry.import_manifest(manifest)
        yield fleet, registry, ExecutionContext(registry, engine, fleet.clock.now, timeouts=FAST)


def item(context: ExecutionContext, serial: str, command: str = "profile", *, start: datetime | None = None,
         end: datetime | None = None) -> WorkItem:
    with Session(context.engine) as session:
        meter = session.scalars(select(Meter).where(Meter.serial == serial)).one()
    return WorkItem(1, 1, "n2pload", meter.id, serial, meter.concentrator_id, command,  # type: ignore[arg-type]
                    1, start, end, "run:1")


async def run_pass(context: ExecutionContext, command: str = "profile") -> dict[str, ItemOutcome]:
    """What the engine does with one pass: every meter once; a DC found unreachable fails its other meters."""
    executor = collect_profile if command == "profile" else collect_daily
    outcomes: dict[str, ItemOutcome] = {}
    dead: dict[str, ItemOutcome] = {}
    for meter in pass_meters(context.engine):
        if meter.concentrator_id in dead:
            outcomes[meter.serial] = dead[meter.concentrator_id]
            continue
        outcome = await executor(context, item(context, meter.serial, command))
        outcomes[meter.serial] = outcome
        if outcome.concentrator_unreachable and meter.concentrator_id is not None:
            dead[meter.concentrator_id] = outcome
    return outcomes


async def dc_reads(fleet: Fleet) -> None:
    for dc in fleet.concentrators.values():
        await dc.read_cycle()


def stored_profile(engine: Engine, serial: str) -> dict[tuple[datetime, str], tuple[float, int]]:
    with Session(engine) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.obis, IntervalValue.value,
                                      IntervalValue.quality).where(IntervalValue.meter_id == meter_id)).all()
    out = {(end, obis): (value, quality) for end, obis, value, quality in rows}
    assert len(out) == len(rows)
    return out


def expected_profile(serial: str, start: datetime, end: datetime, skip: frozenset[int] = frozenset()) -> dict[
        tuple[datetime, str], float]:
    first, last = interval_index(start), interval_index(end) - 1
    out: dict[tuple[datetime, str], float] = {}
    for row in profile_intervals(SEED, serial, first, last):
        if row.interval in skip:
            continue
        out[interval_end(row.interval), A_PLUS] = row.a_plus
        out[interval_end(row.interval), A_MINUS] = row.a_minus
    return out


def expected_state(serial: str, start: datetime, end: datetime) -> str:
    """EXE, or WARN when the simulator flags a power cut in one of the intervals ending in (start, end]."""
    return profile_state(SEED, serial, interval_index(start), interval_index(end) - 1)


def values_of(stored: dict[tuple[datetime, str], tuple[float, int]]) -> dict[tuple[datetime, str], float]:
    return {key: value for key, (value, _) in stored.items()}


def watermark(engine: Engine, serial: str, obis: str = "1.0.99.1.0.255") -> datetime | None:
    with Session(engine) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        mark = session.get(CollectionWatermark, (meter_id, obis))
        return None if mark is None else mark.collected_until


def collection(engine: Engine, serial: str) -> MeterCollection:
    with Session(engine) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        row = session.get(MeterCollection, meter_id)
        assert row is not None
        return row


DC_A, DC_B, P2P = "SIM000100000", "SIM000100001", "P2P000000000"


# --- the basic pass ------------------------------------------------------------------------------------------------


def test_a_day_of_profile_and_daily_values_stored_once_equal_to_the_simulator(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            for serial in (DC_A, DC_B, P2P):
                outcome = await collect_profile(context, item(context, serial))
                assert outcome.state == expected_state(serial, START, EPOCH), outcome
                assert not any("gap" in o or "nothing newer" in o for o in outcome.observations), outcome
                assert outcome.stored == 192
                assert values_of(stored_profile(engine, serial)) == expected_profile(serial, START, EPOCH)
                assert watermark(engine, serial) == MARK
                state = collection(engine, serial)
                assert state.reachable is True and state.last_contact == EPOCH and state.misses == 0

                daily = await collect_daily(context, item(context, serial, "daily"))
                assert daily.state == "EXE" and daily.stored == 4, daily
                with Session(engine) as session:
                    got = {(r.capture_time, r.obis): r.value for r in session.scalars(
                        select(RegisterReading).join(Meter, Meter.id == RegisterReading.meter_id)
                        .where(Meter.serial == serial))}
                midnight = MIDNIGHT  # 00:00 local (UTC+1)
                truth = registers_at(SEED, serial, midnight)
                assert got == {(midnight, A_PLUS): truth.a_plus, (midnight, "1.0.1.8.1.255"): truth.a_plus_t1,
                               (midnight, "1.0.1.8.2.255"): truth.a_plus_t2, (midnight, A_MINUS): truth.a_minus}
                assert watermark(engine, serial, "1.0.98.1.0.255") == midnight

            # Nothing is due: the watermark is the last boundary; nothing is read, nothing stored twice.
            again = await run_pass(context)
            assert {o.state for o in again.values()} == {"EXE"} and all(o.stored == 0 for o in again.values())

            # An hour later, after the DC's own read: four intervals more each, from the watermark on.
            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)
            later = await run_pass(context)
            assert all(o.stored == 8 for o in later.values()), later
            for serial in (DC_A, DC_B, P2P):
                assert values_of(stored_profile(engine, serial)) == expected_profile(
                    serial, START, EPOCH + timedelta(hours=1))
            with Session(engine) as session:
                dc = session.get(Concentrator, "DC0001")
                assert dc is not None and dc.reachable is True and dc.last_contact == EPOCH + timedelta(hours=1)

    run(body)


def test_used_up_counters_fail_the_meter_and_reserve_nothing(tmp_path: Path, engine: Engine, master_key: Any) -> None:
    """A DC whose invocation counters would pass the limit: FAIL saying to rekey, no session, and the
    shared reservation transaction leaves its counter where it was (the other meters' ranges commit)."""
    from sqlalchemy import text

    from hes.db.counters import COUNTER_LIMIT

    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (_fleet, _registry, context):
            with Session(engine) as session:
                dc = session.get(Concentrator, "DC0001")
                assert dc is not None
                sap = dc.client_sap
            with engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO invocation_counters (device, client_sap, next_counter, updated_at) "
                    "VALUES ('DC0001', :sap, :next, CURRENT_TIMESTAMP) ON CONFLICT (device, client_sap) "
                    "DO UPDATE SET next_counter = excluded.next_counter"), {"sap": sap, "next": COUNTER_LIMIT - 5})
            dc_meter, p2p = await asyncio.gather(
                collect_meter(context, [item(context, DC_A), item(context, DC_A, "daily")]),
                collect_meter(context, [item(context, P2P), item(context, P2P, "daily")]))
            assert [o.state for o in dc_meter] == ["FAIL", "FAIL"]
            assert all("used up" in (o.reason or "") and "rekey" in (o.reason or "") and not o.retryable
                       for o in dc_meter), dc_meter
            assert [o.stored for o in p2p] == [192, 4]  # the other meter of the transaction is collected
            with engine.connect() as connection:
                assert connection.execute(text(
                    "SELECT next_counter FROM invocation_counters WHERE device = 'DC0001' AND client_sap = :sap"),
                    {"sap": sap}).scalar_one() == COUNTER_LIMIT - 5
            assert watermark(engine, DC_A) is None

    run(body)


def test_a_meters_profile_and_daily_values_share_one_session_and_meters_share_transactions(
        tmp_path: Path, engine: Engine, master_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``collect_meter`` (what the engine runs for a meter's N2PLoad items claimed together): one association
    for both, the same rows as two separate reads, and meters collected at once commit together."""
    import hes.runner
    from hes.db.group_commit import for_loop

    sessions: list[str] = []
    real = hes.runner.open_session

    def counting(target: Any, *args: Any, **kwargs: Any) -> Any:
        sessions.append(target.serial)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(hes.runner, "open_session", counting)

    async def body() -> None:
        async with field(tmp_path, engine, master_key, meters_per_dc=4) as (_fleet, _registry, context):
            serials = [m.serial for m in pass_meters(engine)]
            results = await asyncio.gather(*(
                collect_meter(context, [item(context, serial), item(context, serial, "daily")]) for serial in serials))
            for serial, (profile, daily) in zip(serials, results, strict=True):
                assert profile.state == expected_state(serial, START, EPOCH), (serial, profile)
                assert profile.stored == 192, (serial, profile)
                assert daily.state == "EXE" and daily.stored == 4, (serial, daily)
                assert values_of(stored_profile(engine, serial)) == expected_profile(serial, START, EPOCH)
                assert watermark(engine, serial) == MARK
                assert watermark(engine, serial, "1.0.98.1.0.255") == MIDNIGHT
            assert sorted(sessions) == sorted(serials)  # one session per meter, not one per command
            store = for_loop(engine, "n2pload-store", lambda _c, r: r)
            assert store.requests == len(serials) and store.flushes < len(serials)
            # Nothing due any more: no session at all, nothing stored twice.
            sessions.clear()
            again = await collect_meter(context, [item(context, serials[0]), item(context, serials[0], "daily")])
            assert [o.state for o in again] == ["EXE", "EXE"] and [o.stored for o in again] == [0, 0]
            assert sessions == []
            with pytest.raises(ValueError):
                await collect_meter(context, [item(context, serials[0]), item(context, serials[1], "daily")])

    run(body)


def test_the_dc_returning_nothing_newer_is_a_warn_and_the_meter_is_recorded_unreachable(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            await run_pass(context)
            start = fleet.clock.now()
            fleet.set_unreachable(DC_A, start, timedelta(hours=2, minutes=30))
            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)  # the DC reaches DC_B, not DC_A
            outcomes = await run_pass(context)
            assert outcomes[DC_B].state == expected_state(DC_B, MARK, fleet.clock.now())
            assert outcomes[DC_B].stored == 8
            missed = outcomes[DC_A]
            assert missed.state == "WARN" and missed.stored == 0 and not missed.concentrator_unreachable
            (observation,) = missed.observations
            assert f"DC0001 returned nothing newer than {MARK:%Y-%m-%dT%H:%M:%S}Z" in observation
            state = collection(engine, DC_A)
            assert state.reachable is False and state.misses == 1 and state.unreachable_since == start + \
                timedelta(hours=1) and state.last_contact == EPOCH
            assert watermark(engine, DC_A) == MARK

            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)
            assert (await run_pass(context))[DC_A].state == "WARN"
            assert collection(engine, DC_A).misses == 2

            # The meter is back: the DC collects everything it missed, and so does the next pass.
            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)
            back = (await run_pass(context))[DC_A]
            now = fleet.clock.now()
            assert back.state == expected_state(DC_A, MARK, now) and back.stored == 2 * 12, back
            assert values_of(stored_profile(engine, DC_A)) == expected_profile(DC_A, START, now)
            state = collection(engine, DC_A)
            assert state.reachable is True and state.misses == 0 and state.unreachable_since is None

    run(body)


def test_a_dc_outage_fails_its_meters_and_the_next_pass_backfills_without_a_gap(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key, concentrators=2) as (fleet, _registry, context):
            await run_pass(context)
            fleet.set_outage("DC0002", True)
            for _ in range(3):
                fleet.clock.jump(timedelta(hours=1))
                await dc_reads(fleet)  # the DC keeps reading its meters; only its WAN is down
                outcomes = await run_pass(context)
                for serial in ("SIM000200000", "SIM000200001"):
                    failed = outcomes[serial]
                    assert failed.state == "FAIL" and failed.retryable and failed.concentrator_unreachable
                    assert failed.reason is not None and failed.reason.startswith("concentrator DC0002 is unreachable")
                    assert watermark(engine, serial) == MARK
                now = fleet.clock.now()
                assert outcomes[DC_A].state == expected_state(DC_A, now - timedelta(hours=1), now)
            with Session(engine) as session:
                dc = session.get(Concentrator, "DC0002")
                assert dc is not None and dc.reachable is False and dc.last_contact == EPOCH

            fleet.set_outage("DC0002", False)
            outcomes = await run_pass(context)
            now = fleet.clock.now()
            for serial in ("SIM000200000", "SIM000200001"):
                assert outcomes[serial].state == expected_state(serial, MARK, now)
                assert outcomes[serial].stored == 2 * 12
                assert values_of(stored_profile(engine, serial)) == expected_profile(serial, START, now)
                assert watermark(engine, serial) == interval_floor(now)
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(CollectionGap)) == 0

    run(body)


# --- gaps ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def meter_loses(monkeypatch: pytest.MonkeyPatch, serial: str, lost: frozenset[int]) -> Iterator[None]:
    """The meter's (and so its DC's) profile lacks intervals ``lost`` until the block ends."""
    original = profile_intervals  # what simulators.meter calls to build its buffer

    def without(seed: Any, which: str, first: int, last: int, windows: Any = ()) -> Iterator[Any]:
        for row in original(seed, which, first, last, windows):
            if which != serial or row.interval not in lost:
                yield row

    monkeypatch.setattr("simulators.meter.profile_intervals", without)
    try:
        yield
    finally:
        monkeypatch.setattr("simulators.meter.profile_intervals", original)


def test_a_gap_in_returned_data_is_flagged_stops_the_watermark_and_is_filled_next_pass(
        tmp_path: Path, engine: Engine, master_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = interval_index(START)
    lost = frozenset({first + 40, first + 41, first + 42})

    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (_fleet, _registry, context):
            with meter_loses(monkeypatch, DC_A, lost):
                outcome = await collect_profile(context, item(context, DC_A))
            assert outcome.state == "WARN" and outcome.stored == 2 * 93
            gap_start, gap_end = interval_end(first + 40), interval_end(first + 42)
            assert any(o.startswith(f"gap: 3 load profile missing from {gap_start:%Y-%m-%dT%H:%M:%S}Z to "
                                    f"{gap_end:%Y-%m-%dT%H:%M:%S}Z") and "asked again next pass" in o
                       for o in outcome.observations), outcome.observations
            stored = stored_profile(engine, DC_A)
            assert values_of(stored) == expected_profile(DC_A, START, EPOCH, skip=lost)
            flagged = {end for (end, _), (_, quality) in stored.items() if quality & QUALITY_AFTER_GAP}
            assert flagged == {interval_end(first + 43)}
            assert watermark(engine, DC_A) == interval_end(first + 39)
            with Session(engine) as session:
                (gap,) = session.scalars(select(CollectionGap)).all()
                assert (gap.first_missing, gap.last_missing, gap.missing, gap.state) == (gap_start, gap_end, 3, "open")

            # The next pass asks from the watermark again; the DC has the intervals now.
            again = await collect_profile(context, item(context, DC_A))
            # Everything after the watermark comes again: WARN if a power cut is flagged in it.
            assert again.state == expected_state(DC_A, interval_end(first + 39), EPOCH), again
            assert again.stored == 2 * 3, again
            assert not any("gap" in o for o in again.observations)
            stored = stored_profile(engine, DC_A)
            assert values_of(stored) == expected_profile(DC_A, START, EPOCH)
            assert not any(quality & QUALITY_AFTER_GAP for _, quality in stored.values())
            assert watermark(engine, DC_A) == MARK
            with Session(engine) as session:
                (gap,) = session.scalars(select(CollectionGap)).all()
                assert gap.state == "filled" and gap.resolved_at == EPOCH

    run(body)


def test_a_gap_that_never_comes_is_declared_lost_and_the_watermark_moves_on(
        tmp_path: Path, engine: Engine, master_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = interval_index(START)
    lost = frozenset({first + 10})

    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            with meter_loses(monkeypatch, DC_B, lost):
                for attempt in range(1, GAP_GIVE_UP_ATTEMPTS + 1):
                    fleet.clock.jump(INTERVAL)
                    await dc_reads(fleet)
                    outcome = await collect_profile(context, item(context, DC_B))
                    assert outcome.state == "WARN", outcome
                    with Session(engine) as session:
                        (gap,) = session.scalars(select(CollectionGap)).all()
                    if attempt < GAP_GIVE_UP_ATTEMPTS:
                        assert gap.state == "open" and gap.attempts == attempt
                        assert watermark(engine, DC_B) == interval_end(first + 9)
                    else:
                        assert gap.state == "lost" and any("declared lost" in o for o in outcome.observations)
                        assert watermark(engine, DC_B) == interval_floor(fleet.clock.now())
                # Once lost, later passes go on from the watermark; no new gap record for it.
                before = fleet.clock.now()
                fleet.clock.jump(INTERVAL)
                await dc_reads(fleet)
                outcome = await collect_profile(context, item(context, DC_B))
                assert outcome.state == expected_state(DC_B, before, fleet.clock.now()), outcome
                assert not any("gap" in o for o in outcome.observations)
            now = fleet.clock.now()
            # The first pass ran one interval after START: it looked back one day from then.
            assert values_of(stored_profile(engine, DC_B)) == expected_profile(DC_B, START + INTERVAL, now, skip=lost)
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(CollectionGap)) == 1

    run(body)


# --- the simulated fleet with loss, unreachable meters and a DC outage ------------------------------------------


def test_a_lossy_fleet_with_unreachable_meters_and_an_outage_ends_with_every_interval_stored_once(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key, concentrators=2, meters_per_dc=4, p2p=1, loss=0.6,
                         unreachable_share=0.3, unreachable_for=timedelta(hours=3),
                         dc_outages=("DC0002",)) as (fleet, _registry, context):
            seen: set[str] = set()
            for hour in range(6):
                if hour == 4:
                    fleet.set_outage("DC0002", False)
                fleet.clock.jump(timedelta(hours=1))
                await dc_reads(fleet)
                for serial, outcome in (await run_pass(context)).items():
                    seen.add(outcome.state)
                    if serial.startswith("SIM0002") and hour < 4:
                        assert outcome.state == "FAIL" and outcome.concentrator_unreachable
            assert seen == {"EXE", "WARN", "FAIL"}
            # The loss ends; one more DC read and pass: everything the meters recorded is stored, once.
            for serial in fleet.meters():
                if not serial.startswith("P2P"):
                    fleet.link(serial).loss = 0.0
            await dc_reads(fleet)
            final = await run_pass(context)
            assert {o.state for o in final.values()} <= {"EXE", "WARN"}
            now = fleet.clock.now()
            total = 0
            for serial in fleet.meters():
                # A first pass looks back a day, and never starts after the meter's registration (EPOCH).
                stored = values_of(stored_profile(engine, serial))
                first = min(end for end, _ in stored) - INTERVAL
                assert START < first <= EPOCH
                expected = expected_profile(serial, first, now)
                assert stored == expected, serial
                assert watermark(engine, serial) == interval_floor(now)
                total += len(expected)
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(IntervalValue)) == total
                assert session.scalar(select(func.count()).select_from(CollectionGap)) == 0

    run(body, limit=120)


# --- refusals ---------------------------------------------------------------------------------------------------


def test_a_decommissioned_meter_is_not_collected(tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (_fleet, registry, context):
            registry.decommission(DC_A)
            outcome = await collect_profile(context, item(context, DC_A))
            assert outcome.state == "FAIL" and not outcome.retryable
            since = registry.show_meter(DC_A).decommissioning_date
            assert outcome.reason == f"meter {DC_A} is decommissioned (since {since}): it is not collected " \
                                     "(a retry will not help)"
            assert DC_A not in {m.serial for m in pass_meters(engine)}
            assert [m.serial for m in pass_meters(engine, concentrator="DC0001")] == [DC_B]

    run(body)


# --- failures and the kept profile shape ----------------------------------------------------------------------


def test_a_silent_dc_or_a_dead_p2p_link_fails_and_the_next_success_backfills(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            await run_pass(context)
            fleet.faults("DC0001").silent = True  # the DC's modem takes connections and never answers
            fleet.set_outage(P2P, True)
            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)
            silent = await collect_profile(context, item(context, DC_A))
            assert silent.state == "FAIL" and silent.retryable and silent.concentrator_unreachable
            assert silent.reason is not None and silent.reason.startswith("concentrator DC0001 is unreachable")
            dead = await collect_profile(context, item(context, P2P))
            assert dead.state == "FAIL" and dead.retryable and not dead.concentrator_unreachable
            assert collection(engine, P2P).reason == dead.reason

            fleet.faults("DC0001").silent = False
            fleet.set_outage(P2P, False)
            now = fleet.clock.now()
            for serial in (DC_A, P2P):
                outcome = await collect_profile(context, item(context, serial))
                assert outcome.state == expected_state(serial, MARK, now) and outcome.stored == 8, outcome
                assert values_of(stored_profile(engine, serial)) == expected_profile(serial, START, now)

    run(body)


def test_a_kept_profile_shape_that_no_longer_matches_is_read_again(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            await collect_profile(context, item(context, DC_A))
            with Session(engine) as session, session.begin():
                meter_id = session.scalars(select(Meter.id).where(Meter.serial == DC_A)).one()
                mark = session.get(CollectionWatermark, (meter_id, "1.0.99.1.0.255"))
                assert mark is not None and mark.shape is not None and mark.period_seconds == 900
                kept = mark.shape
                # As if the meter had been reconfigured: the kept shape lacks the A- column.
                mark.shape = kept.replace(',[3,"1.0.2.8.0.255",2,0,[0,30]]', "")
                assert mark.shape != kept
            fleet.clock.jump(timedelta(hours=1))
            await dc_reads(fleet)
            outcome = await collect_profile(context, item(context, DC_A))
            now = fleet.clock.now()
            assert outcome.state == expected_state(DC_A, MARK, now) and outcome.stored == 8, outcome
            assert values_of(stored_profile(engine, DC_A)) == expected_profile(DC_A, START, now)
            with Session(engine) as session:
                again = session.get(CollectionWatermark, (meter_id, "1.0.99.1.0.255"))
                assert again is not None and again.shape == kept

    run(body)


def test_nothing_is_asked_before_a_capture_period_has_passed(tmp_path: Path, engine: Engine, master_key: Any) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, _registry, context):
            assert (await collect_daily(context, item(context, DC_A, "daily"))).stored == 4
            fleet.set_outage("DC0001", True)  # any contact would now FAIL
            fleet.clock.jump(MIDNIGHT + timedelta(hours=21) - EPOCH)  # 21 h after the last daily row
            quiet = await collect_daily(context, item(context, DC_A, "daily"))
            assert quiet == ItemOutcome("EXE")  # the next daily row is 24 h after the last: not asked
            fleet.clock.jump(timedelta(hours=5))
            due = await collect_daily(context, item(context, DC_A, "daily"))
            assert due.state == "FAIL" and due.concentrator_unreachable

    run(body)
