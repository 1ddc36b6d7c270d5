"""The small rules of the DC model: session budgets, counter keys, response deadlines, the DC's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from concentrator.budget import BudgetError, SessionBudget
from concentrator.clock import ClockCheck, ClockError, ClockPolicy, ClockState
from concentrator.keys import concentrated_keys, logical_device_key, management_keys, meter_keys
from concentrator.links import DeadlineError, Deadlines


def test_one_budget_per_dc_with_overrides() -> None:
    budget = SessionBudget(8, {"DC0002": 2})
    assert (budget.of("DC0001"), budget.of("DC0002")) == (8, 2)
    assert budget.with_default(16).of("DC0001") == 16 and budget.with_default(16).of("DC0002") == 2
    for bad in (0, -1, 1001, True):
        with pytest.raises(BudgetError):
            SessionBudget(bad)  # type: ignore[arg-type]
    with pytest.raises(BudgetError, match="concentrator DC9"):
        SessionBudget(4, {"DC9": 0})


def test_counter_keys() -> None:
    meter = meter_keys("SIM1", 1)
    assert (meter.sent_device, meter.received_device, meter.lock, meter.shared_sequence) == ("SIM1", "SIM1", "SIM1",
                                                                                            False)
    dc = management_keys("DC0001", 1)
    assert (dc.sent_device, dc.received_device, dc.lock) == ("DC0001", "DC0001", "DC0001")
    tables = concentrated_keys("DC0001", 1, 257)
    # One sequence sent to the DC for all its logical devices, one replay floor (and lock) per logical device.
    assert (tables.sent_device, tables.received_device, tables.lock) == ("DC0001", "DC0001#257", "DC0001#257")
    assert tables.shared_sequence and logical_device_key("DC0001", 257) == "DC0001#257"


def test_deadlines_by_link() -> None:
    deadlines = Deadlines()
    assert deadlines.for_exchange(tunnelled=False) == 20.0
    assert deadlines.for_exchange(tunnelled=True, medium="plc") == 90.0
    assert deadlines.for_exchange(tunnelled=True, medium="rf") == 30.0
    assert deadlines.for_exchange(tunnelled=True) == 90.0  # unknown: the slower one
    assert deadlines.for_exchange(tunnelled=True, medium="rf", override=45) == 45.0
    assert deadlines.for_exchange(tunnelled=False, override=45) == 20.0  # the DC's own WAN exchanges
    with pytest.raises(DeadlineError, match="medium"):
        deadlines.for_exchange(tunnelled=True, medium="wifi")  # type: ignore[arg-type]
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(DeadlineError):
            Deadlines(plc=bad)
    with pytest.raises(DeadlineError):
        deadlines.for_exchange(tunnelled=True, override=0)


def test_the_dc_clock() -> None:
    hes = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    local = timezone(timedelta(hours=2))
    check = ClockCheck("DC0001", (hes + timedelta(seconds=75)).astimezone(local), hes, tolerance=60)
    assert check.deviation == 75.0 and not check.within
    assert check.observation() == ("concentrator DC0001 clock off by +75 s (tolerance 60 s): "
                                   "hes concentrator clock sync DC0001")
    assert ClockCheck("DC0001", hes - timedelta(seconds=9.5), hes).within
    assert ClockCheck("DC0001", hes, hes).observation() is None
    with pytest.raises(ClockError):
        ClockCheck("DC0001", hes.replace(tzinfo=None), hes)
    with pytest.raises(ClockError):
        ClockCheck("DC0001", hes, hes, tolerance=-1)
    state = ClockState()
    assert state.due(hes)
    state = state.after(check)
    assert state == ClockState(hes, 75.0)
    assert not state.due(hes + timedelta(minutes=59)) and state.due(hes + timedelta(hours=1))
    assert state.due(hes + timedelta(seconds=1), timedelta(0))


def test_the_clock_policy_and_its_settings() -> None:
    assert ClockPolicy().tolerance == 10.0 and ClockPolicy().every == timedelta(hours=1)
    with pytest.raises(ClockError):
        ClockPolicy(tolerance=-1)
    with pytest.raises(ClockError):
        ClockPolicy(every=timedelta(seconds=-1))
