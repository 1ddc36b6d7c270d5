"""The HES database on SQLite and PostgreSQL: migrations, idempotent readings, counters across a crash, orders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, inspect, select

from hes.db import create_engine_for, current_revision, head_revision, session_factory, upgrade
from hes.db.counters import CounterExhausted, counter_state, record_received, reserve_counters
from hes.db.migrate import downgrade
from hes.db.models import EventRecord, IntervalValue, Meter, Order, RegisterReading
from hes.db.orders import OrderStateError, create_order, finish_order, record_audit, start_order
from hes.db.readings import (
    EventRow,
    IntervalRow,
    RegisterRow,
    meter_ids,
    store_events,
    store_intervals,
    store_many,
    store_registers,
)
from hes.db.stored import StoredBatch, add_listener, remove_listener

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 1, 10, tzinfo=UTC)
TABLES = {
    "concentrators", "meters", "invocation_counters", "interval_values", "register_readings", "events", "orders",
    "asset_events", "audit_trail",
}


def _meters(engine: Engine, count: int) -> list[int]:
    # A Core insert of the columns given (and those with defaults): the ORM would name every column of
    # today's model, which a database at an older revision (the migration tests) does not have yet.
    with session_factory(engine)() as session:
        session.execute(insert(Meter).values([{"serial": f"M{n:04d}", "host": "127.0.0.1", "port": 4059 + n}
                                              for n in range(count)]))
        session.commit()
        ids = meter_ids(session, [f"M{n:04d}" for n in range(count)])
    return [ids[f"M{n:04d}"] for n in range(count)]


def _day(meter: int, day: datetime = DAY) -> list[IntervalRow]:
    return [
        IntervalRow(meter, obis, 2, day + timedelta(minutes=15 * (k + 1)), float(k * 10 + channel), -1, 30, 0)
        for channel, obis in enumerate(("1.0.1.8.0.255", "1.0.2.8.0.255"))
        for k in range(96)
    ]


def test_migrations_from_empty_create_every_table(database_url: str) -> None:
    engine = create_engine_for(database_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert upgrade(engine) == head_revision()  # a second upgrade is a no-op
    # Interval values keyed (meter, end, OBIS, attribute): the key serves a meter's time ranges, no second index.
    assert inspect(engine).get_pk_constraint("interval_values")["constrained_columns"] == [
        "meter_id", "interval_end", "obis", "attribute"]
    assert inspect(engine).get_indexes("interval_values") == []
    assert downgrade(engine, "base") == ""
    assert not TABLES & set(inspect(engine).get_table_names())
    assert upgrade(engine) == head_revision()
    engine.dispose()


def test_the_interval_key_migration_keeps_every_value(database_url: str) -> None:
    """0008 -> 0009 rebuilds (SQLite) or re-keys (PostgreSQL) interval_values: every row is still there,
    identity still unique, and the way back restores the old key and index."""
    engine = create_engine_for(database_url)
    assert upgrade(engine, "0008") == "0008"
    meters = _meters(engine, 2)
    rows = _day(meters[0]) + _day(meters[1])
    with engine.begin() as connection:
        assert store_intervals(connection, rows) == len(rows)
    assert upgrade(engine) == head_revision()
    with session_factory(engine)() as session:
        got = {(r.meter_id, r.obis, r.attribute, r.interval_end): (r.value, r.scaler, r.unit, r.status)
               for r in session.scalars(select(IntervalValue))}
    assert got == {(r.meter_id, r.obis, r.attribute, r.interval_end): (r.value, r.scaler, r.unit, r.status)
                   for r in rows}
    with engine.begin() as connection:
        assert store_intervals(connection, rows) == 0  # the same identity: nothing stored twice
    assert downgrade(engine, "0008") == "0008"  # with rows that refer to the meters (foreign keys hold)
    assert inspect(engine).get_pk_constraint("interval_values")["constrained_columns"] == [
        "meter_id", "obis", "attribute", "interval_end"]
    assert {ix["name"] for ix in inspect(engine).get_indexes("interval_values")} == {"ix_interval_values_meter_end"}
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(IntervalValue)) == len(rows)
    engine.dispose()


def test_a_day_of_intervals_stored_twice_is_stored_once(engine: Engine) -> None:
    first, second = _meters(engine, 2)
    rows = _day(first) + _day(second)
    with engine.begin() as connection:
        assert store_intervals(connection, rows) == 2 * 192
    with engine.begin() as connection:
        assert store_intervals(connection, rows) == 0
        # Half old, half new: only the new half counts.
        assert store_intervals(connection, _day(first) + _day(first, DAY + timedelta(days=1))) == 192
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(IntervalValue)) == 3 * 192
        stored = session.scalars(
            select(IntervalValue)
            .where(IntervalValue.meter_id == first)
            .order_by(IntervalValue.interval_end, IntervalValue.obis)
        ).first()
        assert stored is not None
        assert stored.interval_end == DAY + timedelta(minutes=15) and stored.interval_end.tzinfo is not None
        assert (stored.value, stored.scaler, stored.unit, stored.status) == (0.0, -1, 30, 0)


def test_one_instant_in_two_time_zones_is_one_key(engine: Engine) -> None:
    (meter,) = _meters(engine, 1)
    utc = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
    cest = utc.astimezone(timezone(timedelta(hours=2)))
    with session_factory(engine)() as session:
        # Stored through the ORM first: the bulk path must produce the very same key.
        session.add(RegisterReading(meter_id=meter, obis="1.0.1.8.0.255", capture_time=utc, value=5.0, scaler=0))
        session.commit()
        assert store_registers(session, [RegisterRow(meter, "1.0.1.8.0.255", cest, 5.0, 0, 30, 120)]) == 0
        assert store_registers(session, [RegisterRow(meter, "1.0.1.8.0.255", cest + timedelta(hours=1), 6.0)]) == 1
        session.commit()
        assert session.scalar(select(func.count()).select_from(RegisterReading)) == 2
    with pytest.raises(ValueError, match="naive"), engine.begin() as connection:
        store_registers(connection, [RegisterRow(meter, "1.0.1.8.0.255", datetime(2024, 1, 1), 1.0)])


def test_events_are_idempotent_on_log_code_and_time(engine: Engine) -> None:
    (meter,) = _meters(engine, 1)
    at = DAY + timedelta(hours=3)
    rows = [
        EventRow(meter, "0.0.99.98.0.255", 1, at, "power down"),
        EventRow(meter, "0.0.99.98.0.255", 2, at, "power up"),  # same time, other code: another event
        EventRow(meter, "0.0.99.98.1.255", 1, at, "other log"),
    ]
    with engine.begin() as connection:
        assert store_events(connection, rows) == 3
        assert store_events(connection, rows + rows) == 0
        assert store_events(connection, []) == 0
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(EventRecord)) == 3


# The table is emptied at the start of every example, so sharing the migrated database is safe.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), max_size=30), max_size=4))
def test_new_counts_add_up_to_distinct_keys(engine: Engine, batches: list[list[tuple[int, int]]]) -> None:
    with session_factory(engine)() as session:
        ids = meter_ids(session, ["HYP0"])
        if not ids:
            session.add(Meter(serial="HYP0", host="127.0.0.1", port=1))
            session.commit()
            ids = meter_ids(session, ["HYP0"])
    meter = ids["HYP0"]
    with engine.begin() as connection:
        connection.execute(delete(IntervalValue))
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        rows = [IntervalRow(meter, f"1.0.{c}.8.0.255", 2, DAY + timedelta(minutes=15 * k), 1.0) for c, k in batch]
        with engine.begin() as connection:
            assert store_intervals(connection, rows) == len(set(batch) - seen)
        seen |= set(batch)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=60), min_size=1,
                       max_size=4),
       before=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=80),
       commit=st.booleans())
def test_store_many_tells_listeners_exactly_the_new_rows(engine: Engine, groups: list[list[tuple[int, int]]],
                                                        before: list[tuple[int, int]], commit: bool) -> None:
    """The batch path (SQLite: one executemany kept only when every row is new, else RETURNING; PostgreSQL:
    a binary COPY into a staging table from 64 rows on) tells the listeners exactly the rows it added, counts
    them per group, and stays inside the caller's transaction."""
    with session_factory(engine)() as session:
        ids = meter_ids(session, ["HYP1"])
        if not ids:
            session.add(Meter(serial="HYP1", host="127.0.0.1", port=1))
            session.commit()
            ids = meter_ids(session, ["HYP1"])
    meter = ids["HYP1"]
    with engine.begin() as connection:
        connection.execute(delete(IntervalValue))
        connection.execute(delete(RegisterReading))

    def row(key: tuple[int, int]) -> IntervalRow:
        return IntervalRow(meter, f"1.0.{key[0]}.8.0.255", 2, DAY + timedelta(minutes=15 * key[1]), float(key[1]))

    with engine.begin() as connection:
        store_intervals(connection, [row(k) for k in before])
    told: list[StoredBatch] = []

    def listener(_connection: object, batch: StoredBatch) -> None:
        told.append(batch)

    register = RegisterRow(meter, "1.0.1.8.0.255", DAY, 5.0)
    add_listener(listener)
    try:
        connection = engine.connect()
        try:
            # The store is the transaction's first statement: nothing may commit before the caller does.
            counts = store_many(connection, [([row(k) for k in group], [register] if n == 0 else [])
                                             for n, group in enumerate(groups)])
            if commit:
                connection.commit()
            else:
                connection.rollback()
        finally:
            connection.close()
    finally:
        remove_listener(listener)
    seen = set(before)
    expected = []
    for group in groups:
        new = set(group) - seen
        expected.append(len(new))
        seen |= new
    expected[0] += 1  # the register reading, new every example
    assert counts == expected
    told_keys = sorted((int(r.obis.split(".")[2]), round((r.interval_end - DAY) / timedelta(minutes=15)))
                       for batch in told for r in batch.intervals)
    assert told_keys == sorted(seen - set(before))
    assert [len(batch.registers) for batch in told] == [1]
    with session_factory(engine)() as session:
        stored = session.scalar(select(func.count()).select_from(IntervalValue)) or 0
        registers = session.scalar(select(func.count()).select_from(RegisterReading)) or 0
    assert stored == (len(seen) if commit else len(set(before)))
    assert registers == (1 if commit else 0)


@pytest.mark.parametrize("listening", [False, True])
@pytest.mark.parametrize("count", [3, 200])
def test_store_many_refused_rows_give_a_storage_error_and_store_nothing(engine: Engine, count: int,
                                                                        listening: bool) -> None:
    """A row for a meter that does not exist, on the raw-cursor paths too (SQLite executemany in a savepoint,
    PostgreSQL binary COPY from 64 rows): the typed one-line error, and the transaction keeps nothing."""
    from hes.db.engine import StorageError, storage_errors

    good = _meters(engine, 1)[0]
    rows = [IntervalRow(good, "1.0.1.8.0.255", 2, DAY + timedelta(minutes=15 * k), float(k)) for k in range(count)]
    rows.append(IntervalRow(good + 999, "1.0.1.8.0.255", 2, DAY, 1.0))
    told: list[StoredBatch] = []

    def listener(_connection: object, batch: StoredBatch) -> None:
        told.append(batch)

    if listening:  # the listener's path: SQLite's executemany in a savepoint, kept only if all rows are new
        add_listener(listener)
    try:
        with pytest.raises(StorageError, match="refused") as refused, storage_errors(engine), \
                engine.begin() as connection:
            store_many(connection, [(rows, [])])
    finally:
        remove_listener(listener)
    assert "\n" not in str(refused.value) and told == []
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(IntervalValue)) == 0


def test_counter_reservations_are_disjoint_and_persisted(engine: Engine) -> None:
    first = reserve_counters(engine, "SIM000100000", 1, 10)
    assert (first.start, first.limit, first.last_received) == (1, 11, None)
    second = reserve_counters(engine, "SIM000100000", 1, 5)
    assert second.start == 11 and second.limit == 16
    other_sap = reserve_counters(engine, "SIM000100000", 0x10, 3)
    assert other_sap.start == 1
    assert record_received(engine, "SIM000100000", 1, 40) is True
    assert record_received(engine, "SIM000100000", 1, 40) is False  # not above the last one: a replay
    assert record_received(engine, "SIM000100000", 1, 39) is False
    assert counter_state(engine, "SIM000100000", 1) == (16, 40)
    skipped = reserve_counters(engine, "SIM000100000", 1, 5, minimum=1000)
    assert (skipped.start, skipped.last_received) == (1000, 40)
    with session_factory(engine)() as session:
        assert reserve_counters(session, "SIM000100000", 1, 1).start == 1005
    with pytest.raises(CounterExhausted, match="rekey"):
        reserve_counters(engine, "DC0001", 1, 2, minimum=2**32 - 1)
    with pytest.raises(ValueError):
        reserve_counters(engine, "DC0001", 1, 0)


def test_concurrent_reservations_never_overlap(engine: Engine) -> None:
    ranges: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            got = reserve_counters(engine, "DC0001", 1, 3)
            with lock:
                ranges.append((got.start, got.limit))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ranges) == 60
    used = sorted(n for start, limit in ranges for n in range(start, limit))
    assert used == list(range(1, 181))


def test_a_process_killed_after_reserving_never_reuses_a_counter(database_url: str, engine: Engine) -> None:
    script = (
        "import os, signal, sys\n"
        "from hes.db import create_engine_for\n"
        "from hes.db.counters import reserve_counters\n"
        "r = reserve_counters(create_engine_for(sys.argv[1]), 'P2P000000001', 1, 100)\n"
        "print(r.start, r.limit, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # dies before using (or releasing) any of them\n"
    )
    before = reserve_counters(engine, "P2P000000001", 1, 7)
    child = subprocess.run([sys.executable, "-c", script, database_url], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == -signal.SIGKILL, child.stderr
    start, limit = map(int, child.stdout.split())
    assert start == before.limit and limit == start + 100
    after = reserve_counters(engine, "P2P000000001", 1, 1)
    assert after.start == limit  # the killed process's unused counters are skipped, none is handed out again


def test_orders_and_the_audit_trail(engine: Engine) -> None:
    with session_factory(engine)() as session:
        order = create_order(session, "SIM000100000", "read", {"what": "profile"}, "operator")
        assert order.order_number.startswith("ORD-") and order.state == "PENDING"
        start_order(session, order)
        finish_order(session, order, "WARN", observations="2 intervals missing")
        with pytest.raises(OrderStateError):
            finish_order(session, order, "EXE")
        with pytest.raises(OrderStateError):
            finish_order(session, create_order(session, "X", "read"), "PENDING")
        record_audit(session, "operator", f"read SIM000100000 profile ({order.order_number})", "WARN")
        session.commit()
    with session_factory(engine)() as session:
        stored = session.scalars(select(Order).where(Order.state == "WARN")).one()
        assert stored.parameters == {"what": "profile"} and stored.finished_at is not None
        assert stored.started_at is not None and stored.started_at <= stored.finished_at


def test_a_meters_watermarks_in_one_statement_equal_each_one_alone(engine: Engine) -> None:
    """``load_watermarks`` (N2PLoad's prepare) gives what ``load_watermark`` gives per profile: a mark with its
    open or lost gaps, a mark without gaps, and none."""
    from hes.db.collection import insert_gap, load_watermark, load_watermarks, upsert_watermarks

    with session_factory(engine)() as session:
        session.add(Meter(serial="WM0", host="127.0.0.1", port=1))
        session.commit()
        meter = meter_ids(session, ["WM0"])["WM0"]
    profile, daily, events = "1.0.99.1.0.255", "1.0.98.1.0.255", "0.0.99.98.0.255"
    with engine.begin() as connection:
        upsert_watermarks(connection, [(meter, profile, DAY, 900, '{"shape": 1}', DAY),
                                       (meter, daily, DAY - timedelta(days=1), 86400, None, DAY)])
        insert_gap(connection, meter, profile, DAY - timedelta(hours=2), DAY - timedelta(hours=1), 5, "open", DAY, None)
        insert_gap(connection, meter, profile, DAY - timedelta(hours=5), DAY - timedelta(hours=4), 5, "lost", DAY, None)
        insert_gap(connection, meter, profile, DAY - timedelta(hours=8), DAY - timedelta(hours=7), 5, "filled", DAY,
                   DAY)
    with engine.connect() as connection:
        together = load_watermarks(connection, meter, [profile, daily, events])
        alone = {obis: load_watermark(connection, meter, obis) for obis in (profile, daily, events)}
        assert load_watermarks(connection, meter, [daily]) == {daily: alone[daily]}
    assert together == alone
    assert (together[profile].collected_until, together[profile].period, together[profile].gaps) == (DAY, 900, 2)
    assert together[profile].shape == '{"shape": 1}'
    assert (together[daily].collected_until, together[daily].gaps) == (DAY - timedelta(days=1), 0)
    assert together[events].collected_until is None and together[events].gaps == 0
