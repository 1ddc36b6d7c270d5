"""Completeness and silent-device reports over what N2PLoad stored from a simulated field, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from hes.db.models import IntervalValue, Meter
from scheduler.n2pload import collect_profile
from scheduler.reports import ReportError, completeness, silent
from simulators.energy import interval_index
from tests.fieldtime import EPOCH, utc_midnight
from tests.scheduler.test_n2pload import DC_A, DC_B, field, item, meter_loses, run, run_pass

DC_C, P2P = "SIM000100002", "P2P000000000"
#: The field stands at a UTC midnight (the one of the pinned epoch's day): its first pass collects the day before.
MIDNIGHT = utc_midnight(EPOCH)
START = MIDNIGHT - timedelta(days=1)
DAY = START.date()  # START .. MIDNIGHT is this UTC day (2024-02-29 by default)


def set_commissioning(engine: Engine, dates: dict[str, date]) -> None:
    with Session(engine) as session, session.begin():
        for serial, day in dates.items():
            session.execute(update(Meter).where(Meter.serial == serial).values(commissioning_date=day))


def test_completeness_of_a_day_per_meter_with_threshold_and_partial_days(
        tmp_path: Path, engine: Engine, master_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = interval_index(START)

    async def body() -> None:
        async with field(tmp_path, engine, master_key, epoch=MIDNIGHT, meters_per_dc=3) as (_fleet, registry, context):
            set_commissioning(engine, {DC_A: date(2024, 1, 1), DC_B: date(2024, 1, 1), DC_C: date(2024, 1, 1),
                                       P2P: DAY})
            await collect_profile(context, item(context, DC_A))
            with meter_loses(monkeypatch, DC_B, frozenset({first + 5, first + 6, first + 7})):
                await collect_profile(context, item(context, DC_B))
            with meter_loses(monkeypatch, DC_C, frozenset({first + 50})):
                await collect_profile(context, item(context, DC_C))
            await collect_profile(context, item(context, P2P))

            report = completeness(engine, DAY, as_of=MIDNIGHT + timedelta(days=1))
            data = report.to_json()
            assert data["day"] == DAY.isoformat() and data["meters"] == 3 and data["meters_complete"] == 1
            assert data["meters_complete_share"] == round(1 / 3, 6)
            assert data["intervals_expected"] == 288 and data["intervals_stored"] == 96 + 93 + 95
            assert data["intervals_share"] == round(284 / 288, 6)
            assert data["below_threshold"] == [DC_B]
            assert data["below_threshold_detail"] == [{"serial": DC_B, "expected": 96, "stored": 93,
                                                       "share": round(93 / 96, 6)}]
            assert data["excluded"] == [{"serial": P2P, "reason": "commissioned during the day"}]
            assert 0 <= data["meters_at_or_above_threshold_share"] <= 1

            assert completeness(engine, DAY, threshold=96, as_of=MIDNIGHT).to_json()["below_threshold"] == []
            # Half the day gone: only the intervals ended so far are expected.
            half = completeness(engine, DAY, as_of=START + timedelta(hours=12)).to_json()
            assert half["intervals_expected"] == 3 * 48 and half["intervals_stored"] == 48 + 45 + 48

            # A meter decommissioned that day is not judged on it; one decommissioned before is not there.
            registry.decommission(DC_C, when=DAY)
            registry.decommission(DC_B, when=date(2024, 2, 1))
            later = completeness(engine, DAY, as_of=MIDNIGHT).to_json()
            assert later["meters"] == 1 and later["below_threshold"] == []
            assert {"serial": DC_C, "reason": "decommissioned during the day"} in later["excluded"]
            # The next day: nothing collected yet.
            empty = completeness(engine, MIDNIGHT.date(), as_of=MIDNIGHT + timedelta(days=1)).to_json()
            assert empty["meters"] == 2 and empty["intervals_stored"] == 0
            assert empty["below_threshold"] == [P2P, DC_A] and empty["excluded"] == []

    run(body)
    with pytest.raises(ReportError, match="threshold 101"):
        completeness(engine, DAY, threshold=101)


def test_silent_lists_meters_without_data_and_concentrators_without_contact(
        tmp_path: Path, engine: Engine, master_key: Any) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    epoch = now - timedelta(minutes=now.minute % 15)

    async def body() -> None:
        async with field(tmp_path, engine, master_key, epoch=epoch, concentrators=2,
                         dc_outages=("DC0002",)) as (_fleet, _registry, context):
            outcomes = await run_pass(context)
            assert outcomes[DC_A].state != "FAIL" and outcomes["SIM000200000"].state == "FAIL"
            # DC_B's data was stored three days ago, as far as the database says.
            three_days_ago = datetime.now(UTC) - timedelta(days=3)
            with Session(engine) as session, session.begin():
                meter_id = session.scalars(select(Meter.id).where(Meter.serial == DC_B)).one()
                session.execute(update(IntervalValue).where(IntervalValue.meter_id == meter_id).values(
                    collected_at=three_days_ago))

            report = silent(engine, datetime.now(UTC) - timedelta(hours=48))
            meters = {m.serial: m for m in report.meters}
            assert set(meters) == {DC_B, "SIM000200000", "SIM000200001"}
            last = meters[DC_B].last_data
            assert last is not None and abs(last - three_days_ago) < timedelta(seconds=1)
            assert meters["SIM000200000"].last_data is None and meters["SIM000200000"].concentrator == "DC0002"
            assert [(c.ident, c.last_contact, c.meters) for c in report.concentrators] == [("DC0002", None, 2)]
            data = report.to_json()
            assert {m["serial"] for m in data["meters"]} == set(meters)
            assert data["concentrators"][0]["id"] == "DC0002" and data["concentrators"][0]["reachable"] is False

            # Since a moment in the future, everything is silent, DC0001 with its last contact.
            future = silent(engine, datetime.now(UTC) + timedelta(hours=1))
            assert {c.ident: c.last_contact for c in future.concentrators} == {"DC0001": epoch, "DC0002": None}
            assert len(future.meters) == 5

    run(body)
    with pytest.raises(ReportError):
        silent(engine, datetime(2024, 1, 1))
    assert EPOCH.tzinfo is UTC
