"""Part 3 of ``hes demo``: scheduled collection (N2PLoad), completeness and CIM delivery on a simulated field.

It lives in ``cli/`` because it joins the packages built on the core (``scheduler/``, ``cim/``),
which ``hes/`` may not import. The field's time is frozen at a midnight; the meters were
installed two days earlier, so the first N2PLoad pass collects two whole days through the
concentrators (and directly from the point-to-point meters). Then: the completeness of the last
whole day, delivery of the CIM outbox into a legacy integration database (SQLite in the data
folder), and checks that every interval stored equals the simulator's value and reached the legacy
database exactly once; a second pass must find nothing new.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["CollectionReport", "run_collection"]

SEED = 20261130


@dataclass
class CollectionReport:
    """What part 3 did and what it found wrong (``mismatches`` empty: every check held)."""

    meters: int = 0
    concentrators: int = 0
    day: date | None = None
    #: (serial, command, state, detail) per item of the first pass.
    items: list[tuple[str, str, str, str]] = field(default_factory=list)
    run_summary: str = ""
    intervals_stored: int = 0
    second_pass_new: int = 0
    #: The completeness report of ``day`` (``scheduler.reports.CompletenessReport.to_json``).
    completeness: dict[str, Any] = field(default_factory=dict)
    delivered: int = 0
    legacy_intervals: int = 0
    legacy_readings: int = 0
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def run_collection(data_dir: Path, *, concentrators: int = 2, meters_per_dc: int = 3, p2p: int = 2,
                         field_now: datetime | None = None) -> CollectionReport:
    """Run part 3 in ``data_dir`` (its own databases there); see the module docstring."""
    from sqlalchemy import func, select

    import cim.outbox
    from cim.delivery import Delivery
    from cim.legacy import LEGACY_INTERVALS, LEGACY_READINGS
    from hes.config import load_settings
    from hes.db import create_engine_for, upgrade
    from hes.db.models import IntervalValue, Meter
    from hes.keys import load_master_key
    from hes.registry import Registry
    from hes.session import Timeouts
    from scheduler.contract import ExecutionContext
    from scheduler.engine import EngineOptions, Worker
    from scheduler.executors import default_executors
    from scheduler.plans import N2PLOAD, Plans, PlanSpec
    from scheduler.reports import completeness
    from simulators.clock import FieldClock
    from simulators.energy import interval_end, interval_index, profile_intervals
    from simulators.fleet import Fleet, FleetOptions

    started = time.perf_counter()
    report = CollectionReport()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        load_settings({}),
        database_url=f"sqlite:///{data_dir / 'hes.db'}",
        legacy_database_url=f"sqlite:///{data_dir / 'hes-legacy.db'}",
        data_dir=data_dir,
        master_key_file=data_dir / "master.key",
    )
    midnight = (field_now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = (midnight - timedelta(days=1)).date()
    report.day = day
    engine = create_engine_for(settings.database_url)
    cim.outbox.install(settings)
    delivery: Delivery | None = None
    try:
        upgrade(engine)
        key = load_master_key(settings.master_key_file)
        fleet = Fleet(
            FleetOptions(concentrators=concentrators, meters_per_dc=meters_per_dc, p2p=p2p, seed=SEED,
                         schedule=False, plc_latency=0.0, loss=0.0, counters=data_dir / "field-counters.json"),
            clock=FieldClock(midnight, 0.0),
        )
        async with fleet:
            manifest = data_dir / "fleet.json"
            fleet.write_manifest(manifest)
            # Installed two days before the field's "now", so the last whole day is judged for completeness.
            installer = Registry(engine, key, clock=lambda: midnight - timedelta(days=2))
            summary = installer.import_manifest(manifest, who="demo")
            report.concentrators = summary.concentrators_added + summary.concentrators_updated
            report.meters = summary.meters_added + summary.meters_updated
            for dc in fleet.concentrators.values():
                await dc.read_cycle()  # the DCs read their meters on their own schedule; once is enough here

            registry = Registry(engine, key, clock=fleet.clock.now)
            context = ExecutionContext(registry, engine, fleet.clock.now,
                                       timeouts=Timeouts(connect=5.0, read=5.0, release=2.0), requested_by="demo")
            plans = Plans(engine, clock=fleet.clock.now)

            # N2PLoad covers the meters behind concentrators; the point-to-point meters get a plan of their own.
            direct = sorted(serial for serial in fleet.meters() if serial.startswith("P2P"))
            if direct and "demo-p2p" not in {plan.name for plan in plans.list_plans()}:
                plans.create(PlanSpec("demo-p2p", "list", direct, ("profile", "daily")), who="demo")

            async def one_pass() -> list[int]:
                runs = [plans.start_run(N2PLOAD, trigger="n2pload", who="demo", commands=("profile", "daily"))]
                if direct:
                    runs.append(plans.start_run("demo-p2p", who="demo"))
                # The plans stamp their items in field time: the worker must judge them due by the same clock,
                # or a field ahead of the wall clock (a pinned ``field_now``) leaves every item pending.
                worker = Worker(context, default_executors(), EngineOptions(worker_id="demo", poll=0.05),
                                clock=fleet.clock.now)
                for run in runs:
                    await worker.work(run_id=run.id, wait_retries=False)
                return [run.id for run in runs]

            counts: dict[str, int] = {}
            for run_id in await one_pass():
                for state, count in plans.run_info(run_id).counts.items():
                    counts[state] = counts.get(state, 0) + count
                for item in plans.items(run_id):
                    detail = item.reason or item.observations or f"{item.stored} new values"
                    report.items.append((item.serial, item.command, item.state, detail))
                    if item.state not in ("EXE", "WARN"):
                        report.mismatches.append(f"N2PLoad {item.command} {item.serial}: {item.state} {detail}")
            report.run_summary = ", ".join(f"{state} {count}" for state, count in sorted(counts.items()))

            with engine.connect() as connection:
                report.intervals_stored = connection.scalar(select(func.count()).select_from(IntervalValue)) or 0
            report.second_pass_new = sum(item.stored for run_id in await one_pass() for item in plans.items(run_id))
            if report.second_pass_new:
                report.mismatches.append(f"the second pass stored {report.second_pass_new} values again")

            completeness_report = completeness(engine, day, as_of=midnight)
            report.completeness = completeness_report.to_json()
            if completeness_report.below:
                report.mismatches.append(f"below the completeness threshold on {day}: "
                                         + ", ".join(m.serial for m in completeness_report.below))

            delivery = Delivery(engine, settings)
            while True:
                done = delivery.deliver_due()
                report.delivered += done.delivered
                if done.failed or done.discarded:
                    report.mismatches.append(f"CIM delivery: {done.failed} failed, {done.discarded} discarded: "
                                             + "; ".join(done.reasons[:3]))
                    break
                if not done.delivered:
                    break

            # Every interval of the judged day: stored once, equal to the simulator, in the legacy database once.
            first, last = interval_index(datetime.combine(day, datetime.min.time(), UTC)), interval_index(midnight) - 1
            with engine.connect() as connection:
                ids = dict(connection.execute(select(Meter.serial, Meter.id)).all())
                stored = {(serial, end, obis): value for serial, end, obis, value in connection.execute(
                    select(Meter.serial, IntervalValue.interval_end, IntervalValue.obis, IntervalValue.value)
                    .join(Meter, Meter.id == IntervalValue.meter_id))}
            with delivery.legacy.connect() as connection:
                report.legacy_intervals = connection.scalar(select(func.count()).select_from(LEGACY_INTERVALS)) or 0
                report.legacy_readings = connection.scalar(select(func.count()).select_from(LEGACY_READINGS)) or 0
                legacy = {(meter, end, code): value for meter, end, code, value in connection.execute(
                    select(LEGACY_INTERVALS.c.meter, LEGACY_INTERVALS.c.interval_end,
                           LEGACY_INTERVALS.c.reading_type, LEGACY_INTERVALS.c.value))}
            if report.legacy_intervals != report.intervals_stored:
                report.mismatches.append(f"legacy database holds {report.legacy_intervals} intervals, the head-end "
                                         f"{report.intervals_stored}")
            by_time: dict[tuple[str, datetime], list[Decimal]] = {}
            for (meter, end, code), value in legacy.items():
                if value is not None:
                    multiplier = Decimal(10) ** int(code.split(".")[15])  # the ReadingType's multiplier field
                    by_time.setdefault((meter, end), []).append(Decimal(value) * multiplier)
            for serial in sorted(ids):
                for row in profile_intervals(SEED, serial, first, last, fleet.meter(serial).windows):
                    end = interval_end(row.interval).astimezone(UTC)
                    for obis, want in (("1.0.1.8.0.255", row.a_plus), ("1.0.2.8.0.255", row.a_minus)):
                        report.checked += 1
                        got = stored.get((serial, end, obis))
                        if got is None or got != want:
                            report.mismatches.append(f"{serial} {obis} at {end.isoformat()}: stored {got}, "
                                                     f"simulator {want}")
                    in_legacy = sorted(by_time.get((serial, end), []))
                    if in_legacy != sorted(Decimal(v) for v in (row.a_plus, row.a_minus)):
                        report.mismatches.append(f"{serial} at {end.isoformat()}: legacy database has "
                                                 f"{[str(v) for v in in_legacy]}, simulator {row.a_plus}/{row.a_minus}")
    finally:
        if delivery is not None:
            delivery.close()
        cim.outbox.uninstall()
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report
