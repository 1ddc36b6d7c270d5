"""Collection benchmark: head-end CPU per meter-day for N2PLoad (a day of 15-min profile + the daily values).

    python -m bench.collect [--concentrators 10] [--meters-per-dc 500] [--gurux-meters 100] [--json]

The simulated field (``simulators.fleet``, frozen at 2024-03-01T00:00Z, every DC having read its
meters) runs in a separate process, so its CPU is not counted. The head-end process collects
through the real path: ``scheduler.n2pload.collect_meter`` per meter (what the plan engine runs for
a meter's profile and daily items: one session for both; ``--engine`` runs the day pass as a plan
run through the engine itself), concentrated reads over TCP with the DCs' HLS-GMAC security, and
storage through ``hes.db.readings`` into a fresh database (SQLite file by default,
``--database-url`` for PostgreSQL), with the CIM outbox installed as the ``hes`` command installs
it (every store also writes its CIM messages in the same transaction; ``--no-cim`` leaves it out).

1. A first pass collects the day before (not timed as the figure: it also reads each profile's
   capture objects and scalers, kept with the watermark; reported as ``hes_first_pass_...``).
2. The timed pass collects the day: ``time.process_time()`` of this process around it (sessions,
   protocol, storage, asyncio), wall time for meters per second.
3. What the head-end stored is checked: every meter's 96 intervals x 2 channels and 4 daily
   values, and a sample compared with ``simulators.energy``'s values.
4. The baseline: a collector built on the gurux-dlms client (test-only dependency) doing the same
   reads (one session per meter, HLS-GMAC, range reads of both profiles) for
   ``--gurux-meters`` meters, one after the other on blocking sockets, turning the rows into typed
   values (``changeType`` to a date-time, as a gurux user does) and storing them with the same
   storage code (CIM outbox included) into a second database. Its CPU per meter-day is measured
   the same way.

Not counted unless ``--engine``: the plan engine's own bookkeeping (claiming work items, recording
their results, the run's summary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from concentrator.budget import SessionBudget
from hes.db import create_engine_for, upgrade
from hes.db.models import IntervalValue, Meter, RegisterReading
from hes.db.readings import IntervalRow, RegisterRow, store_many
from hes.heap import collection_heap
from hes.keys import load_master_key
from hes.loop import loop_name
from hes.loop import run as run_loop
from hes.registry import Registry
from hes.session import Timeouts
from hes.slots import ConcentratorSlots, Gate
from hes.transport.pool import LinkPool
from scheduler.contract import Command, ExecutionContext, WorkItem
from scheduler.engine import EngineOptions, Worker
from scheduler.executors import default_executors
from scheduler.n2pload import collect_meter, pass_meters
from scheduler.plans import N2PLOAD, Plans
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.fleet import Fleet, FleetOptions
from simulators.manifest import read_manifest

__all__ = ["main", "measure"]

EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
DAY_START = EPOCH - timedelta(days=1)
WARM_START = EPOCH - timedelta(days=2)
CHANNELS = ("1.0.1.8.0.255", "1.0.2.8.0.255")
DAILY = ("1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.2.8.0.255")
GURUX_TITLE = bytes.fromhex("4755525558000002")
TIMEOUTS = Timeouts(connect=10.0, read=30.0, release=5.0, retries=1)


# --- the field, in its own process ------------------------------------------------------------------------------


def _serve_field(concentrators: int, meters_per_dc: int, seed: int, manifest: str, ready: EventType,
                 stop: EventType, cpu: Any) -> None:
    async def serve() -> None:
        options = FleetOptions(concentrators=concentrators, meters_per_dc=meters_per_dc, seed=seed, time_scale=0.0,
                               epoch=EPOCH, loss=0.0)
        async with Fleet(options) as fleet:
            fleet.write_manifest(manifest)
            ready.set()
            while not stop.is_set():
                cpu.value = time.process_time()
                await asyncio.sleep(0.2)

    asyncio.run(serve())


@contextlib.contextmanager
def _field(concentrators: int, meters_per_dc: int, seed: int, manifest: Path) -> Any:
    """Run the field in a spawned process; yields a shared value with that process's CPU seconds so far."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    cpu = context.Value("d", 0.0)
    process = context.Process(target=_serve_field, name="bench-field",
                              args=(concentrators, meters_per_dc, seed, str(manifest), ready, stop, cpu))
    process.start()
    try:
        if not ready.wait(300):
            raise SystemExit("the simulated field did not start within 300 s")
        yield cpu
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.terminate()
            process.join(10)


# --- the head-end -------------------------------------------------------------------------------------------------


_COMMANDS: tuple[Command, ...] = ("profile", "daily")


def _items(engine: Engine, start: datetime | None, end: datetime) -> list[tuple[WorkItem, WorkItem]]:
    out = []
    for number, meter in enumerate(pass_meters(engine)):
        out.append(tuple(
            WorkItem(2 * number + k, 1, "bench", meter.meter_id, meter.serial, meter.concentrator_id, command,
                     1, start, end, "run:bench")
            for k, command in enumerate(_COMMANDS)))
    return out  # type: ignore[return-value]


async def _pass(context: ExecutionContext, items: Sequence[tuple[WorkItem, WorkItem]],
                concurrency: int) -> Counter[str]:
    gate = asyncio.Semaphore(concurrency)
    states: Counter[str] = Counter()
    # As Worker.work does: the sessions of the pass share idle DC connections (hes.transport.pool).
    links = LinkPool()
    context = replace(context, links=links)

    async def one(profile: WorkItem, daily: WorkItem) -> None:
        async with gate:
            for outcome in await collect_meter(context, [profile, daily]):
                states[outcome.state] += 1
                if outcome.state == "FAIL":
                    states[f"FAIL: {outcome.reason}"] += 1

    try:
        await asyncio.gather(*(one(p, d) for p, d in items))
    finally:
        await links.aclose()
    return states


@dataclass(frozen=True, slots=True)
class _Timed:
    cpu: float
    wall: float
    states: Counter[str]
    user: float
    system: float


def _measured(pass_: Callable[[], Counter[str]], profile: Path | None) -> _Timed:
    """Run ``pass_`` (it returns the outcome states) timed, and under cProfile into ``profile`` when given."""
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    times, cpu, wall = os.times(), time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    states = pass_()
    if profiler is not None:
        profiler.disable()
    after = os.times()
    timed = _Timed(time.process_time() - cpu, time.perf_counter() - wall, states, after.user - times.user,
                   after.system - times.system)
    if profiler is not None and profile is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
        profile.write_text(text.getvalue())
    return timed


def _timed_pass(context: ExecutionContext, items: Sequence[tuple[WorkItem, WorkItem]], concurrency: int,
                profile: Path | None = None) -> _Timed:
    def pass_() -> Counter[str]:
        # The DCs' session budget, as Worker.work makes one per call. The collector settings are the plan
        # engine's (Worker.work runs in collection_heap too).
        with collection_heap():
            return run_loop(_pass(replace(context, gate=Gate(ConcentratorSlots(SessionBudget(8)))), items,
                                  concurrency))

    return _measured(pass_, profile)


def _engine_pass(context: ExecutionContext, concurrency: int, profile: Path | None = None) -> _Timed:
    """The day pass as ``hes n2pload --daily`` runs it: a run of the built-in n2pload plan worked by a
    ``Worker`` (claims, a meter's two items as one unit, outcomes and the run's summary recorded)."""
    plans = Plans(context.engine)
    worker = Worker(context, default_executors(),
                    EngineOptions(worker_id="bench", concurrency=concurrency, per_concentrator=8, poll=0.05))

    def pass_() -> Counter[str]:
        run = plans.start_run(N2PLOAD, trigger="n2pload", who="bench", commands=_COMMANDS)
        run_loop(worker.work(run_id=run.id))
        return Counter(plans.run_info(run.id).counts)

    return _measured(pass_, profile)


def _rollback_journal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=DELETE")
    finally:
        cursor.close()


def _verify(engine: Engine, seed: int, meters: int) -> dict[str, Any]:
    """What the head-end stored for the day: counts, and a sample against the simulator's values."""
    with Session(engine) as session:
        intervals = session.scalar(select(func.count()).select_from(IntervalValue).where(
            IntervalValue.interval_end > DAY_START, IntervalValue.interval_end <= EPOCH)) or 0
        daily = session.scalar(select(func.count()).select_from(RegisterReading).where(
            RegisterReading.capture_time > DAY_START, RegisterReading.capture_time <= EPOCH)) or 0
        sample = session.execute(select(Meter.id, Meter.serial).order_by(Meter.id).limit(5)).all()
        mismatches = 0
        first = interval_index(DAY_START)
        for ident, serial in sample:
            stored = {(r.interval_end, r.obis): r.value for r in session.scalars(select(IntervalValue).where(
                IntervalValue.meter_id == ident, IntervalValue.interval_end > DAY_START,
                IntervalValue.interval_end <= EPOCH))}
            want = {}
            for row in profile_intervals(seed, serial, first, first + 95):
                want[interval_end(row.interval), CHANNELS[0]] = float(row.a_plus)
                want[interval_end(row.interval), CHANNELS[1]] = float(row.a_minus)
            mismatches += stored != want
            midnight = EPOCH - timedelta(hours=1)
            truth = registers_at(seed, serial, midnight)
            got = {r.obis: r.value for r in session.scalars(select(RegisterReading).where(
                RegisterReading.meter_id == ident, RegisterReading.capture_time == midnight))}
            mismatches += got != dict(zip(DAILY, map(float, truth)))
    return {"stored_intervals": intervals, "stored_daily_values": daily,
            "expected_intervals": meters * 96 * len(CHANNELS), "expected_daily_values": meters * len(DAILY),
            "sample_meters_checked": len(sample), "sample_mismatches": mismatches,
            "ok": intervals == meters * 96 * len(CHANNELS) and daily == meters * len(DAILY) and mismatches == 0}


def _count_outbox(engine: Engine) -> int:
    from cim.models import OutboxMessage

    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


# --- the gurux baseline -------------------------------------------------------------------------------------------


class _GuruxSession:
    """A GXDLMSSecureClient on a blocking socket to one DC logical device, the way gurux's examples drive it."""

    def __init__(self, port: int, client: Any) -> None:
        self.client = client
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def _packet(self, data: Any, reply: Any) -> None:
        from gurux_dlms import GXByteBuffer, GXReplyData

        if data:
            self.sock.sendall(bytes(data))
        received = GXByteBuffer()
        notify = GXReplyData()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the concentrator closed the connection")
            received.set(chunk)
            if self.client.getData(received, reply, notify):
                return

    def exchange(self, messages: Any) -> Any:
        from gurux_dlms import GXReplyData

        reply = GXReplyData()
        if isinstance(messages, bytes | bytearray):
            messages = [messages]
        for message in messages:
            reply.clear()
            self._packet(message, reply)
            while reply.isMoreData():
                self._packet(self.client.receiverReady(reply), reply)
        return reply

    def session(self, reads: Sequence[tuple[str, datetime, datetime]]) -> list[list[Any]]:
        from gurux_dlms import GXDateTime
        from gurux_dlms.objects import GXDLMSProfileGeneric

        try:
            self.client.parseAareResponse(self.exchange(self.client.aarqRequest()).data)
            self.client.parseApplicationAssociationResponse(
                self.exchange(self.client.getApplicationAssociationRequest()).data)
            out = []
            for ln, start, end in reads:
                profile = GXDLMSProfileGeneric(ln)
                out.append(list(self.exchange(self.client.readRowsByRange(
                    profile, GXDateTime(start), GXDateTime(end))).value))
            self.exchange(self.client.releaseRequest())
            return out
        finally:
            self.sock.close()


def _gurux_collect(manifest: Path, engine: Engine, count: int) -> tuple[float, int, int]:
    """CPU seconds for ``count`` meters read by gurux and stored; (cpu, intervals stored, daily values stored)."""
    from gurux_dlms.enums import Authentication, DataType, InterfaceType, Security
    from gurux_dlms.secure import GXDLMSSecureClient

    fleet = read_manifest(manifest)
    work = [(dc, meter) for dc in fleet.concentrators for meter in dc.meters][:count]
    with Session(engine) as session:
        ids = {serial: ident for ident, serial in session.execute(select(Meter.id, Meter.serial))}
    intervals = daily = 0
    counter = 2**31
    cpu = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every ciphered APDU
        for dc, meter in work:
            meter_id = ids[meter.serial]
            rows: list[IntervalRow] = []
            registers: list[RegisterRow] = []
            client = GXDLMSSecureClient(True, dc.client_sap, meter.logical_device, Authentication.HIGH_GMAC, None,
                                        InterfaceType.WRAPPER)
            client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
            client.ciphering.systemTitle = GURUX_TITLE
            client.ciphering.blockCipherKey = dc.security.ek
            client.ciphering.authenticationKey = dc.security.ak
            # The DC checks counters per logical device: above anything the head-end used.
            client.ciphering.invocationCounter = counter
            counter += 100
            # One session for both profiles, as the head-end does.
            lns = ("1.0.99.1.0.255", "1.0.98.1.0.255")
            answers = _GuruxSession(dc.port, client).session(
                [(ln, DAY_START + timedelta(seconds=1), EPOCH) for ln in lns])
            for ln, got in zip(lns, answers, strict=True):
                for row in got:
                    moment = client.changeType(row[0], DataType.DATETIME).value
                    at = moment.astimezone(UTC)
                    if ln == "1.0.99.1.0.255":
                        status = int(row[1])
                        rows += [IntervalRow(meter_id, CHANNELS[0], 2, at, int(row[2]), 0, 30, status),
                                 IntervalRow(meter_id, CHANNELS[1], 2, at, int(row[3]), 0, 30, status)]
                    else:
                        registers += [RegisterRow(meter_id, obis, at, int(value), 0, 30, -60)
                                      for obis, value in zip(DAILY, row[1:])]
            with Session(engine) as session, session.begin():
                (new,) = store_many(session, [(rows, registers)])
            if new != len(rows) + len(registers):  # a fresh database: every row is new
                raise RuntimeError(f"gurux baseline: {new} of {len(rows) + len(registers)} rows stored for "
                                   f"{meter.serial}")
            intervals += len(rows)
            daily += len(registers)
    return time.process_time() - cpu, intervals, daily


# --- the whole -------------------------------------------------------------------------------------------------------


def measure(concentrators: int, meters_per_dc: int, gurux_meters: int, concurrency: int, seed: int,
            database_url: str | None, profile: Path | None, sqlite_rollback: bool = False,
            cim: bool = True, through_engine: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hes-bench-collect-") as folder:
        tmp = Path(folder)
        manifest = tmp / "fleet.json"
        with _field(concentrators, meters_per_dc, seed, manifest) as field_cpu:
            engine = create_engine_for(database_url or f"sqlite:///{tmp / 'hes.db'}")
            if sqlite_rollback and engine.dialect.name == "sqlite":
                # After each connection's own pragmas (the head-end's WAL): SQLite's default journal instead.
                event.listen(engine, "connect", _rollback_journal)
            upgrade(engine)
            registry = Registry(engine, load_master_key(tmp / "master.key"), clock=lambda: EPOCH)
            registry.import_manifest(manifest)
            meters = len(pass_meters(engine))
            if cim:
                # As the hes command does at start: every store also writes its CIM messages (same transaction).
                from cim.outbox import install

                install()
            context = ExecutionContext(registry, engine, lambda: EPOCH, timeouts=TIMEOUTS, requested_by="bench")
            first = _timed_pass(context, _items(engine, WARM_START, DAY_START), concurrency)
            time.sleep(0.5)
            field_before = field_cpu.value
            day = (_engine_pass(context, concurrency, profile) if through_engine
                   else _timed_pass(context, _items(engine, None, EPOCH), concurrency, profile))
            time.sleep(0.5)
            field_day = field_cpu.value - field_before
            verified = _verify(engine, seed, meters)
            cim_messages = _count_outbox(engine) if cim else None

            gurux_engine = create_engine_for(f"sqlite:///{tmp / 'gurux.db'}")
            upgrade(gurux_engine)
            Registry(gurux_engine, registry.master_key, clock=lambda: EPOCH).import_manifest(manifest)
            count = min(gurux_meters, meters)
            # The same storage for the baseline, CIM outbox included when it is installed.
            with collection_heap():  # the same collector settings as the head-end's pass
                gurux_cpu, gurux_intervals, gurux_daily = _gurux_collect(manifest, gurux_engine, count)
            if cim:
                from cim.outbox import uninstall

                uninstall()
            engine.dispose()
            gurux_engine.dispose()
    hes_ms = day.cpu * 1000 / meters
    gurux_ms = gurux_cpu * 1000 / count if count else None
    return {
        "meters": meters,
        "concentrators": concentrators,
        "meters_per_dc": meters_per_dc,
        "database": ("postgresql" if database_url and database_url.startswith("postgresql")
                     else "sqlite (rollback journal)" if sqlite_rollback else "sqlite (WAL)"),
        "cim_outbox": cim,
        "day_pass": "plan engine (n2pload run)" if through_engine else "executors (collect_meter per meter)",
        "cim_messages_written": cim_messages,
        "concurrency": concurrency,
        "event_loop": loop_name(),
        "hes_cpu_ms_per_meter_day": round(hes_ms, 3),
        "hes_meters_per_s": round(meters / day.wall, 1),
        "hes_wall_s": round(day.wall, 2),
        "field_process_cpu_s_during_day_pass": round(field_day, 2),
        "hes_user_ms_per_meter_day": round(day.user * 1000 / meters, 3),
        "hes_system_ms_per_meter_day": round(day.system * 1000 / meters, 3),
        "hes_states": {k: v for k, v in day.states.items() if not k.startswith("FAIL: ")},
        "hes_fail_reasons": sorted({k[6:] for k in day.states if k.startswith("FAIL: ")})[:5],
        "hes_first_pass_cpu_ms_per_meter_day": round(first.cpu * 1000 / meters, 3),
        "hes_first_pass_states": {k: v for k, v in first.states.items() if not k.startswith("FAIL: ")},
        "hes_stored": verified,
        "gurux_meters": count,
        "gurux_cpu_ms_per_meter_day": None if gurux_ms is None else round(gurux_ms, 3),
        "gurux_stored_intervals": gurux_intervals,
        "gurux_stored_daily_values": gurux_daily,
        "ratio_gurux_over_hes": round(gurux_ms / hes_ms, 2) if hes_ms and gurux_ms else None,
        "target_ms_per_meter_day": 3.0,
        "target_met": hes_ms <= 3.0,
        "hours_of_one_core_for_1m_meters": round(hes_ms * 1_000_000 / 3_600_000, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collect", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--concentrators", type=int, default=10)
    parser.add_argument("--meters-per-dc", type=int, default=500)
    parser.add_argument("--gurux-meters", type=int, default=100, help="meters the gurux baseline collects")
    parser.add_argument("--concurrency", type=int, default=64, help="meters collected at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--sqlite-rollback-journal", action="store_true",
                        help="run SQLite with its rollback journal (SQLite's own default; the head-end's is WAL)")
    parser.add_argument("--no-cim", action="store_true",
                        help="do not install the CIM outbox (by default stored rows also become CIM messages)")
    parser.add_argument("--engine", action="store_true",
                        help="run the timed pass as a plan run through the plan engine (hes n2pload --daily), "
                             "its claims and bookkeeping counted too")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile statistics of the timed pass")
    args = parser.parse_args(argv)
    if args.concentrators < 1 or args.meters_per_dc < 1 or args.concurrency < 1 or args.gurux_meters < 0:
        parser.error("counts must be positive")
    result = measure(args.concentrators, args.meters_per_dc, args.gurux_meters, args.concurrency, args.seed,
                     args.database_url, args.profile, args.sqlite_rollback_journal, not args.no_cim, args.engine)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['meters']} meters: head-end {result['hes_cpu_ms_per_meter_day']} ms CPU per meter-day "
              f"(target <= 3 ms), {result['hes_meters_per_s']} meters/s; gurux baseline "
              f"{result['gurux_cpu_ms_per_meter_day']} ms ({result['gurux_meters']} meters); stored "
              f"{'as expected' if result['hes_stored']['ok'] else 'NOT as expected'}")
    return 0 if result["hes_stored"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

