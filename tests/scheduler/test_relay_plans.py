"""Relay commands in plans against a simulated field: the bulk-disconnect confirmation, read-back, audit, refusals.

Every test runs on SQLite and on PostgreSQL. The relays' states are read from the simulated meters
themselves (``Fleet.meter(serial).relay``), not from what the head-end stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hes.commands import CommandResult
from hes.db.models import AuditEntry, Meter, Order
from hes.keys import MasterKey
from hes.registry import Registry
from hes.session import Timeouts
from protocols.cosem import ControlMode, ControlState
from scheduler.capabilities import record_meter_objects
from scheduler.contract import ExecutionContext, WorkItem
from scheduler.engine import EngineOptions, Worker
from scheduler.executors import RelayExecutor, default_executors, relay_outcome
from scheduler.models import Plan, PlanItem
from scheduler.plans import DisconnectNotConfirmed, PlanError, Plans, PlanSpec, UnknownPlan
from scheduler.service import SchedulerService, ServiceOptions
from simulators.clock import FieldClock
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH

SEED = 11
FAST = Timeouts(connect=1.0, read=1.0, release=0.3, retries=1)
DC = "DC0001"
FEEDER = [f"SIM0001{i:05d}" for i in range(3)]
OTHER = "SIM000100003"
P2P = "P2P000000000"


def run(body: Callable[[], Awaitable[None]], limit: float = 90.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def field(tmp_path: Path, engine: Engine, master_key: MasterKey) -> AsyncIterator[tuple[Fleet, ExecutionContext]]:
    options = FleetOptions(concentrators=1, meters_per_dc=4, p2p=1, seed=SEED, schedule=False, loss=0.0,
                           epoch=EPOCH)
    fleet = Fleet(options, clock=FieldClock(EPOCH, 0.0))
    async with fleet:
        registry = Registry(engine, master_key, clock=fleet.clock.now)
        fleet.write_manifest(tmp_path / "fleet.json")
        registry.import_manifest(tmp_path / "fleet.json")
        yield fleet, ExecutionContext(registry, engine, fleet.clock.now, timeouts=FAST, requested_by="tess")


def relay(fleet: Fleet, serial: str) -> tuple[ControlState, bool]:
    state = fleet.meter(serial).relay
    return state.control_state, state.output_state


def items_of(engine: Engine, run_id: int) -> list[PlanItem]:
    with Session(engine) as session:
        return list(session.scalars(select(PlanItem).where(PlanItem.run_id == run_id).order_by(PlanItem.id)))


def orders(engine: Engine) -> list[Order]:
    with Session(engine) as session:
        return list(session.scalars(select(Order).order_by(Order.id)))


def audits(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def worker(context: ExecutionContext, **options: Any) -> Worker:
    return Worker(context, default_executors(), EngineOptions(worker_id="w", poll=0.05, **options))


def test_a_bulk_disconnect_plan_needs_its_confirmation_then_disconnects_and_reconnects_every_meter(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, context):
            plans = Plans(engine)
            plans.tag("feeder-7", FEEDER)
            spec = PlanSpec("cut", "tag", "feeder-7", ("disconnect",))

            # Unconfirmed: refused, and nothing stored.
            with pytest.raises(DisconnectNotConfirmed) as refused:
                plans.create(spec, who="tess")
            assert refused.value.count == 3 and "--confirm-disconnect" in str(refused.value)
            with pytest.raises(DisconnectNotConfirmed):
                plans.create(spec, who="tess", confirmed_meters=2)  # confirmed fewer than it holds
            with pytest.raises(UnknownPlan):
                plans.get("cut")

            created = plans.create(spec, who="tess", confirmed_meters=3)
            assert (created.disconnect_confirmed_by, created.disconnect_confirmed_meters) == ("tess", 3)
            assert created.disconnect_confirmed_at is not None and created.relay
            assert created.to_json()["disconnect_confirmation"]["meters"] == 3

            assert all(relay(fleet, serial) == (ControlState.CONNECTED, True) for serial in FEEDER)
            cut = plans.start_run("cut", who="tess", confirmed_meters=3)
            assert cut.notes is not None and "disconnect of 3 meters confirmed by tess" in cut.notes
            await worker(context).work(run_id=cut.id)
            rows = items_of(engine, cut.id)
            assert [(row.serial, row.command, row.state) for row in rows] == [
                (serial, "disconnect", "EXE") for serial in FEEDER]
            for row in rows:
                assert row.observations is not None and "control state disconnected, output off" in row.observations
            # Read back from the simulated meters themselves; the untagged ones are untouched.
            assert all(relay(fleet, serial) == (ControlState.DISCONNECTED, False) for serial in FEEDER)
            assert relay(fleet, OTHER) == (ControlState.CONNECTED, True)
            assert relay(fleet, P2P) == (ControlState.CONNECTED, True)

            # Every order audited with the run's user.
            who = f"tess run:{cut.id}"
            cut_orders = [order for order in orders(engine) if order.command == "disconnect"]
            assert sorted(order.meter_serial for order in cut_orders) == FEEDER
            assert {(order.requested_by, order.state) for order in cut_orders} == {(who, "EXE")}
            rows_audited = [entry for entry in audits(engine) if entry.what.startswith("disconnect ")]
            assert sorted(entry.what.split()[1] for entry in rows_audited) == FEEDER
            assert {(entry.who, entry.result) for entry in rows_audited} == {(who, "EXE")}

            # Reconnect in bulk: no confirmation; the simulated relays close again.
            plans.create(PlanSpec("restore", "tag", "feeder-7", ("reconnect",)), who="tess")
            restore = plans.start_run("restore", who="tess")
            await worker(context).work(run_id=restore.id)
            assert {row.state for row in items_of(engine, restore.id)} == {"EXE"}
            assert all(relay(fleet, serial) == (ControlState.CONNECTED, True) for serial in FEEDER)

    run(body)


def test_a_scheduled_run_of_a_tag_grown_past_its_confirmation_is_refused_and_disconnects_nothing(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, context):
            plans = Plans(engine)
            plans.tag("feeder-7", FEEDER[:2])
            plans.create(PlanSpec("cut", "tag", "feeder-7", ("disconnect",), trigger_kind="interval",
                                  trigger_value="1s"), who="tess", confirmed_meters=2)
            plans.tag("feeder-7", [FEEDER[2]])  # the tag grew after the confirmation

            # APScheduler fires the plan (as in hes run): every run it starts is refused, none sends anything.
            service = SchedulerService(dataclasses.replace(context, requested_by="scheduler"),
                                       ServiceOptions(poll=0.05, sync=0.2), worker_id="w1")
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            while not service.fired:
                await asyncio.sleep(0.05)
            stop.set()
            await task
            for run_id in service.fired:
                refused = plans.run_info(run_id)
                assert (refused.trigger, refused.state, refused.total) == ("schedule", "refused", 0)
                assert refused.notes is not None
                assert "the selection holds 3 meters to disconnect" in refused.notes
                assert "confirmation by tess" in refused.notes and "covers 2" in refused.notes
            assert all(relay(fleet, serial) == (ControlState.CONNECTED, True) for serial in FEEDER)
            assert [order for order in orders(engine) if order.command == "disconnect"] == []
            refusals = [entry for entry in audits(engine) if entry.what.startswith("plan run cut")]
            assert refusals and all(entry.who == "scheduler" and entry.result.startswith("REFUSED: not run")
                                    for entry in refusals)

            # Back within the confirmation, a scheduled run goes on the stored one and disconnects.
            plans.tag("feeder-7", [FEEDER[2]], remove=True)
            scheduled = plans.start_run("cut", trigger="schedule", who="scheduler")
            assert scheduled.notes is not None and "on the confirmation of tess" in scheduled.notes
            await worker(dataclasses.replace(context, requested_by="scheduler")).work(run_id=scheduled.id)
            assert {row.state for row in items_of(engine, scheduled.id)} == {"EXE"}
            assert [relay(fleet, serial)[0] for serial in FEEDER] == [
                ControlState.DISCONNECTED, ControlState.DISCONNECTED, ControlState.CONNECTED]
            assert {order.requested_by for order in orders(engine) if order.command == "disconnect"} == {
                f"scheduler run:{scheduled.id}"}

    run(body)


def test_a_one_meter_disconnect_needs_no_confirmation_but_an_unconfirmed_plan_that_grew_is_refused(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, context):
            plans = Plans(engine)
            plans.tag("one", [FEEDER[0]])
            created = plans.create(PlanSpec("single", "tag", "one", ("disconnect",)), who="tess")
            assert created.disconnect_confirmed_by is None
            plans.tag("one", [FEEDER[1]])
            grown = plans.start_run("single", trigger="schedule", who="scheduler")
            assert grown.state == "refused" and grown.notes is not None
            assert "no confirmation covers more than one meter" in grown.notes
            plans.tag("one", [FEEDER[1]], remove=True)
            single = plans.start_run("single", trigger="schedule", who="scheduler")
            await worker(context).work(run_id=single.id)
            assert [(row.serial, row.state) for row in items_of(engine, single.id)] == [(FEEDER[0], "EXE")]
            assert relay(fleet, FEEDER[0]) == (ControlState.DISCONNECTED, False)
            assert relay(fleet, FEEDER[1]) == (ControlState.CONNECTED, True)

    run(body)


def test_relay_orders_need_the_disconnect_control_and_retry_only_when_the_result_says_so(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, context):
            plans = Plans(engine)
            # The support check: a meter known to lack 70/0.0.96.3.10.255 is UNSUPPORTED, never contacted.
            with Session(engine) as session:
                meter_id = session.scalars(select(Meter.id).where(Meter.serial == P2P)).one()
            record_meter_objects(engine, meter_id, ["8/0.0.1.0.0.255", "7/1.0.99.1.0.255"], "test")
            plans.create(PlanSpec("p2p", "list", [P2P], ("disconnect",)), who="tess")
            unsupported = plans.start_run("p2p", who="tess")
            [row] = items_of(engine, unsupported.id)
            assert row.state == "UNSUPPORTED" and row.reason is not None and "70/0.0.96.3.10.255" in row.reason
            assert relay(fleet, P2P) == (ControlState.CONNECTED, True)

            # A relay that cannot be operated (control mode 0) refuses the method: FAIL, not retryable, tried once.
            fleet.meter(FEEDER[0]).relay.control_mode = ControlMode.NONE
            plans.create(PlanSpec("stuck", "list", [FEEDER[0]], ("disconnect",), retries=2, retry_delay_s=0.1),
                         who="tess")
            stuck = plans.start_run("stuck", who="tess")
            await worker(context).work(run_id=stuck.id)
            [row] = items_of(engine, stuck.id)
            assert (row.state, row.retryable, row.attempts) == ("FAIL", False, 1)
            assert row.reason is not None and "method 1" in row.reason

            # The DC down: FAIL, retryable as the order's result says, retried per the plan.
            fleet.set_outage(DC)
            plans.create(PlanSpec("down", "list", [FEEDER[1]], ("disconnect",), retries=1, retry_delay_s=0.1),
                         who="tess")
            down = plans.start_run("down", who="tess")
            await worker(context).work(run_id=down.id)
            [row] = items_of(engine, down.id)
            assert (row.state, row.retryable, row.attempts) == ("FAIL", True, 2)
            assert relay(fleet, FEEDER[1]) == (ControlState.CONNECTED, True)

            # A worker whose links are replaced cannot carry relay orders: FAIL saying so, nothing sent.
            item = WorkItem(1, down.id, "down", meter_id, FEEDER[2], DC, "disconnect", 1, None, None, "run:1")
            replaced = dataclasses.replace(context, connect=lambda *_: None)  # type: ignore[arg-type]
            outcome = await RelayExecutor("disconnect")(replaced, item)
            assert outcome.state == "FAIL" and not outcome.retryable and outcome.reason is not None
            assert relay(fleet, FEEDER[2]) == (ControlState.CONNECTED, True)

    run(body)


def test_relay_outcome_takes_retryable_only_from_a_failed_result() -> None:
    failed = CommandResult("O-1", "M1", "disconnect", "FAIL", reason="timeout", retryable=True)
    assert relay_outcome(failed).retryable and relay_outcome(failed).observations == ("order O-1",)
    refused = CommandResult("O-2", "M1", "disconnect", "FAIL", reason="refused", retryable=False)
    assert not relay_outcome(refused).retryable
    warned = CommandResult("O-3", "M1", "reconnect", "WARN", observations="relay ready for reconnection; x",
                           retryable=True, values={"summary": "control state ready_for_reconnection"})
    outcome = relay_outcome(warned)
    assert (outcome.state, outcome.retryable) == ("WARN", False)
    assert outcome.observations == ("order O-3", "control state ready_for_reconnection", "relay ready for "
                                    "reconnection", "x")


def test_a_plan_disconnects_or_reconnects_not_both(registry: Registry) -> None:
    plans = Plans(registry.engine)
    with pytest.raises(PlanError, match="not both"):
        plans.create(PlanSpec("flip", "all", None, ("disconnect", "reconnect")))
    with Session(registry.engine) as session:
        assert session.scalar(select(Plan.id).where(Plan.name == "flip")) is None
