"""A concentrator's meter table read and reconciled with the registry: ``sync_concentrator``, an order per DC.

The head-end learns which meters a DC serves from the DC itself: an order of the one order
runner on the DC's management logical device reads its clock (judged against the head-end's:
``concentrator.clock``) and its meter table (``concentrator.meter_table``), and in the order's own
transaction reconciles the table with the registry (``hes.db.concentrators.apply_reconciliation``):

- a meter the DC has and the registry lacks is recorded as *discovered*: linked to the DC, not
  read until it is commissioned with its keys (``hes meter commission``, or a registry file);
- a meter the registry links to the DC that the table no longer lists is flagged *missing from
  concentrator* (a WARN, a lifecycle event, listed by ``hes silent``), and cleared when it is back;
- an address or logical device that changed is applied; a meter found in another DC's table is
  moved there.

The order is WARN when meters went missing, when rows of the table could not be used, or when
the DC's clock is off beyond the tolerance; its summary says what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, update
from sqlalchemy.orm import Session

from concentrator.meter_table import DEFAULT_LAYOUT, MeterTableEntry, Reconciliation, parse_meter_table, reconcile
from hes.config import ConfigError
from hes.daemon import DaemonContext
from hes.db.concentrators import apply_reconciliation, registered_for_table
from hes.db.engine import storage_errors
from hes.db.models import Concentrator, utcnow
from hes.runner import Finish, Job, Observations, OrderRunner
from hes.session import AttributeRef, MeterSession
from protocols.axdr import DataTag
from protocols.errors import DecodeError, ServiceError
from protocols.xdlms.selective_access import CaptureObjectDefinition

__all__ = ["DEFAULT_SYNC_EVERY", "SyncComponent", "SyncResult", "claim_due", "component", "sync_concentrator",
           "sync_job"]

logger = logging.getLogger(__name__)

#: Invocation counters for one sync: association, clock, the table's columns and rows in blocks, release.
_COUNTERS = 64


@dataclass(frozen=True, slots=True)
class SyncResult:
    """One DC's sync: its order and result, what the reconciliation found, its clock's deviation."""

    concentrator: str
    order_number: str
    state: str
    reason: str | None
    observations: tuple[str, ...]
    summary: str | None
    meters_in_table: int
    clock_deviation: float | None

    @property
    def ok(self) -> bool:
        return self.state != "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {"concentrator": self.concentrator, "order": self.order_number, "state": self.state,
                "reason": self.reason, "observations": list(self.observations), "summary": self.summary,
                "meters_in_table": self.meters_in_table, "clock_deviation_s": self.clock_deviation}


@dataclass(slots=True)
class _Read:
    entries: list[MeterTableEntry]
    reconciliation: Reconciliation | None = None


def sync_job(ident: str) -> Job[_Read]:
    """The order that reads DC ``ident``'s meter table and reconciles it (see the module docstring)."""
    layout = DEFAULT_LAYOUT

    async def body(session: MeterSession, _observations: Observations) -> _Read:
        columns, rows = await session.get_many([AttributeRef(7, layout.table, 3), AttributeRef(7, layout.table, 2)])
        for answer in (columns, rows):
            if isinstance(answer, ServiceError):
                raise answer
        if columns.tag != DataTag.ARRAY:  # type: ignore[union-attr]
            raise DecodeError(f"concentrator {ident}: meter table {layout.table} capture objects: expected an array")
        definitions = [CaptureObjectDefinition.from_data(item) for item in columns.value]  # type: ignore[union-attr]
        return _Read(parse_meter_table(definitions, rows, layout))  # type: ignore[arg-type]

    def store(db: Session, finish: Finish, read: _Read) -> tuple[int, str]:
        registered = registered_for_table(db, ident, [e.serial for e in read.entries])
        result = read.reconciliation = reconcile(ident, read.entries, registered)
        counts = apply_reconciliation(db, result, finish.now)
        if result.missing:
            finish.observations.append(f"{len(result.missing)} meters no longer in the table: "
                                       + ", ".join(m.serial for m in result.missing[:20])
                                       + (" ..." if len(result.missing) > 20 else ""))
        finish.observations.extend(f"table row {serial} not used: {why}" for serial, why in result.ignored)
        return counts.added + counts.linked + counts.flagged + counts.cleared, result.summary()

    return Job(ident, "concentrator sync", body, _COUNTERS, concentrator=True, store=store, check_dc_clock=True,
               parameters={"described": f"concentrator sync {ident}"})


async def sync_concentrator(runner: OrderRunner, ident: str, *, requested_by: str) -> SyncResult:
    """Read DC ``ident``'s meter table and clock and reconcile the table with the registry, as an order."""
    job = sync_job(ident)
    # A sync always judges the DC's clock, however recently another contact did.
    result = await runner.run(job, requested_by=requested_by, clock_due=True)
    read = result.result
    reconciliation = None if read is None else read.reconciliation
    return SyncResult(ident, result.order_number, result.state, result.reason, result.observations,
                      None if reconciliation is None else reconciliation.summary(),
                      0 if read is None else len(read.entries), result.clock_deviation)


# --- the daily sync of ``hes run`` --------------------------------------------------------------------------------

#: How often each DC's meter table is read by ``hes run`` (``HES_CONCENTRATOR_SYNC_EVERY``, seconds).
DEFAULT_SYNC_EVERY = 86400.0
#: How often the component looks for DCs due a sync.
_LOOK_EVERY = 60.0


def _sync_every() -> float:
    text = os.environ.get("HES_CONCENTRATOR_SYNC_EVERY", "").strip()
    if not text:
        return DEFAULT_SYNC_EVERY
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 60 <= value <= 30 * 86400:
        raise ConfigError(f"HES_CONCENTRATOR_SYNC_EVERY={text}: seconds, from 60 to 2592000")
    return value


def claim_due(engine: Engine, now: datetime, every: float) -> list[str]:
    """DCs whose table was last synced more than ``every`` seconds ago (or never), claimed for this worker by moving
    their ``table_synced_at`` to ``now`` first: two workers sharing a database do not sync one DC twice."""
    due = now - timedelta(seconds=every)
    with storage_errors(engine), engine.begin() as connection:
        return list(connection.execute(
            update(Concentrator).where(or_(Concentrator.table_synced_at.is_(None), Concentrator.table_synced_at < due))
            .values(table_synced_at=now).returning(Concentrator.id)).scalars())


class SyncComponent:
    """The ``concentrator-sync`` component of ``hes run``: every DC's meter table and clock, once a day."""

    name = "concentrator-sync"

    async def run(self, context: DaemonContext) -> None:
        every = _sync_every()
        runner = OrderRunner(context.registry, requested_by="concentrator-sync", gate=context.gate)
        while not context.stop.is_set():
            for ident in claim_due(context.engine, utcnow(), every):
                result = await sync_concentrator(runner, ident, requested_by="concentrator-sync")
                log = logger.warning if result.state != "EXE" else logger.info
                log("concentrator sync %s (%s): %s %s", ident, result.order_number, result.state,
                    result.reason or result.summary or "")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(context.stop.wait(), timeout=_LOOK_EVERY)


def component() -> SyncComponent:
    """The factory ``cli/run.py`` names."""
    return SyncComponent()
