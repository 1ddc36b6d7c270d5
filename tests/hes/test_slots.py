"""Waiting for DC session slots and device locks on asyncio: order, cancellation, re-entry, one loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from concentrator.budget import SessionBudget
from hes.slots import ConcentratorSlots, DeviceLocks, Gate


def run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 5))  # type: ignore[arg-type]


def test_a_dc_budget_holds_and_queues_first_come_first_served() -> None:
    async def main() -> None:
        slots = ConcentratorSlots(SessionBudget(2, {"DC2": 1}))
        order: list[str] = []
        release = asyncio.Event()

        async def session(name: str, dc: str) -> None:
            async with slots.hold(dc):
                order.append(name)
                await release.wait()

        tasks = [asyncio.create_task(session(f"s{n}", "DC1")) for n in range(5)]
        tasks.append(asyncio.create_task(session("other", "DC2")))
        await asyncio.sleep(0.01)
        assert order == ["s0", "s1", "other"] and slots.active("DC1") == 2 and slots.waiting("DC1") == 3
        release.set()
        await asyncio.gather(*tasks)
        assert order[3:] == ["s2", "s3", "s4"] and slots.peak == {"DC1": 2, "DC2": 1}
        assert slots.active("DC1") == 0

    run(main())


def test_a_waiter_cancelled_in_the_queue_leaves_it_and_one_granted_as_it_is_cancelled_passes_the_slot_on() -> None:
    async def main() -> None:
        slots = ConcentratorSlots(SessionBudget(1))
        entered: list[str] = []
        first_in = asyncio.Event()
        leave = asyncio.Event()

        async def hold(name: str) -> None:
            async with slots.hold("DC1"):
                entered.append(name)
                if name == "first":
                    first_in.set()
                await leave.wait()

        first = asyncio.create_task(hold("first"))
        await first_in.wait()
        queued = asyncio.create_task(hold("queued"))
        granted_then_cancelled = asyncio.create_task(hold("granted"))
        last = asyncio.create_task(hold("last"))
        await asyncio.sleep(0.01)
        queued.cancel()  # cancelled while it waits
        await asyncio.sleep(0.01)
        assert slots.waiting("DC1") == 2
        # The first holder leaves; before the task the slot passes to runs, it is cancelled.
        leave.set()
        await asyncio.sleep(0)
        granted_then_cancelled.cancel()
        await asyncio.gather(first, queued, granted_then_cancelled, last, return_exceptions=True)
        assert "queued" not in entered and entered[0] == "first" and entered[-1] == "last"
        assert slots.active("DC1") == 0 and slots.waiting("DC1") == 0

    run(main())


def test_dc_slots_are_reentrant_within_a_task_device_locks_are_not() -> None:
    async def main() -> None:
        slots = ConcentratorSlots(SessionBudget(1))
        async with slots.hold("DC1"), slots.hold("DC1"):  # the engine's slot, then the session's: one slot
            assert slots.active("DC1") == 1
        locks = DeviceLocks()
        async with locks.hold("SIM1"):
            with pytest.raises(RuntimeError, match="already held"):
                async with locks.hold("SIM1"):
                    pass
            async with locks.hold("SIM2"):
                assert locks.active("SIM1") == locks.active("SIM2") == 1
        assert locks.peak == {}  # a lock per device ever read is not remembered

    run(main())


def test_a_gate_takes_the_dc_slot_before_the_device_lock_so_an_engine_unit_and_a_read_cannot_deadlock() -> None:
    async def main() -> None:
        gate = Gate(ConcentratorSlots(SessionBudget(1)))
        unit_holds_slot = asyncio.Event()
        done: list[str] = []

        async def engine_unit() -> None:
            # The engine holds DC1's only slot for a unit; the unit's session then passes the gate.
            async with gate.slots.hold("DC1"):
                unit_holds_slot.set()
                await asyncio.sleep(0.01)
                async with gate.enter("SIM1", "DC1"):
                    done.append("unit")

        async def on_demand_read() -> None:
            await unit_holds_slot.wait()
            async with gate.enter("SIM1", "DC1"):
                done.append("read")

        await asyncio.gather(engine_unit(), on_demand_read())
        assert done == ["unit", "read"]
        assert gate.slots.active("DC1") == 0 and gate.locks.active("SIM1") == 0
        async with gate.enter("P2P1", None):
            assert gate.locks.active("P2P1") == 1

    run(main())


def test_one_loop_at_a_time() -> None:
    slots = ConcentratorSlots(SessionBudget(1))

    async def use() -> None:
        async with slots.hold("DC1"):
            pass

    asyncio.run(use())
    asyncio.run(use())  # idle between the two loops: the books move to the second one

    async def hold_and_try_elsewhere() -> None:
        async with slots.hold("DC1"):
            errors: list[BaseException] = []

            def elsewhere() -> None:
                try:
                    asyncio.run(use())
                except RuntimeError as exc:
                    errors.append(exc)

            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join(5)
            assert len(errors) == 1 and "in use in another event loop" in str(errors[0])

    asyncio.run(hold_and_try_elsewhere())
