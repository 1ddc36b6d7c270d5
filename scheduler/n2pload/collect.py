"""N2PLoad's executors: one meter's profile and daily values after its watermarks, through the one order runner's steps.

``collect_meter`` takes a meter's ``profile`` and/or ``daily`` items (the engine claims them
together in a pass) and reads every due kind in ONE session. It runs the steps of
``hes.runner.Runner`` that every path runs, without an order of its own (the plan item is the
order: the engine records its outcome):

1. ``Runner.check`` (the meter's facts and the use case's checks), the plans (``plan``: what to
   ask after each watermark), ``Runner.reserve`` (target, counters): meters prepared at the same
   time share one transaction (``hes.db.group_commit``), committed before any session starts;
2. ``Runner.session``: through the gate (the DC's one session budget, the logical device's lock),
   a concentrated read (the DC's tables, its security) for a meter behind a DC, a direct one
   otherwise; each kind by the one profile reader, with the shape kept from the last pass;
3. ``assemble`` (pure), then, for meters finishing together in one transaction: the rows
   (``hes.db.readings``, idempotent), gaps, watermarks, the meter's reachability as collection
   sees it, and ``Runner.settle`` (replay floors, the DCs' contact outcomes, their clocks).

Outcomes: EXE (new data, nothing to remark), WARN (new data with observations: gaps, status
flags, undated rows; or the DC returned nothing newer than the watermark, i.e. it did not reach the
meter: the meter's reachability is recorded), FAIL (the session failed: the one classifier's
reason and whether a retry can help; a DC that cannot be reached at all gives
``concentrator_unreachable``, so the engine fails the DC's other queued items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from hes.checks import Refused
from hes.crash import crash_point
from hes.db.collection import (
    insert_gap,
    load_watermarks,
    record_attempts,
    record_misses,
    record_reached,
    resolve_gap,
    set_after_gap,
    stored_ends,
    update_gap,
    upsert_watermarks,
)
from hes.db.devices import MeterFacts
from hes.db.engine import StorageError, storage_errors
from hes.db.group_commit import for_loop
from hes.db.models import Meter
from hes.db.readings import MissingInterval, store_many
from hes.db.stored import StoredBatch, correlation, current_correlation, notify
from hes.db.stored import listeners as stored_listeners
from hes.errors import FAILURES
from hes.failures import Failure, classify, refusal
from hes.profiles import QUALITY_AFTER_GAP, ProfileShape, read_profile
from hes.runner import Job, Observations, Prepared, SessionResult, settle
from hes.session import MeterSession
from scheduler.contract import ExecutionContext, ItemOutcome, WorkItem
from scheduler.n2pload.assemble import Assembled, assemble
from scheduler.n2pload.plan import COMMANDS, Kind, Plan, budget, kind_of, plan_for

__all__ = ["N2PLoadExecutor", "PassMeter", "collect_daily", "collect_meter", "collect_profile", "pass_meters"]


@dataclass(frozen=True, slots=True)
class PassMeter:
    """A meter an N2PLoad pass collects: what a ``WorkItem`` needs about it."""

    meter_id: int
    serial: str
    concentrator_id: str | None


def pass_meters(engine: Engine, *, concentrator: str | None = None) -> list[PassMeter]:
    """The commissioned meters of a pass (of one DC, or all), grouped by DC, then point-to-point ones."""
    query = select(Meter.id, Meter.serial, Meter.concentrator_id).where(Meter.state == "commissioned")
    if concentrator is not None:
        query = query.where(Meter.concentrator_id == concentrator)
    with storage_errors(engine), Session(engine) as session:
        rows = session.execute(query).all()
    meters = [PassMeter(int(ident), serial, dc) for ident, serial, dc in rows]
    meters.sort(key=lambda m: (m.concentrator_id is None, m.concentrator_id or "", m.serial))
    return meters


async def _nothing(_session: MeterSession, _observations: Observations) -> None:
    return None


def _job(serial: str) -> Job[None]:
    # Behind a DC: its tables (the DC's security and counters); a point-to-point meter is read directly.
    # A scheduled pass contacts a DC found down by an earlier pass (the engine fails the rest of this one).
    return Job(serial, "n2pload", _nothing, 1, mode="concentrated", force_contact=True, verb="collected",
               check_dc_clock=True)


# --- step 1: plans and counters, meters prepared together sharing a transaction ------------------------------------


@dataclass(slots=True)
class _Prepared:
    """One meter's kinds and plans (one per item, in order) and, when something is due, its session's target and
    counters."""

    kinds: list[Kind]
    plans: list[Plan]
    prepared: Prepared | None


@dataclass(frozen=True, slots=True)
class _PrepareRequest:
    context: ExecutionContext
    items: Sequence[WorkItem]
    now: datetime


def _prepare_in(connection: Connection, request: _PrepareRequest) -> _Prepared:
    runner = request.context.runner()
    serial = request.items[0].serial
    job = _job(serial)
    facts = runner.check(connection, job, request.now)
    if not isinstance(facts, MeterFacts):  # a meter's job: the runner checks a meter
        raise Refused(f"{serial} is not a meter")
    # The profiles the meter's device type has: their OBIS codes, their status word.
    device_type = runner.registry.device_type_of(facts)
    kinds = [kind_of(device_type, item.command) for item in request.items]
    marks = load_watermarks(connection, facts.id, [str(kind.obis) for kind in kinds])
    plans = [plan_for(connection, facts.id, facts.serial, facts.concentrator_id, facts.created_at, item, kind,
                      marks[str(kind.obis)], request.now) for item, kind in zip(request.items, kinds, strict=True)]
    count = budget(plans, kinds)
    if not count:
        return _Prepared(kinds, plans, None)
    return _Prepared(kinds, plans, runner.reserve(connection, job, facts, request.now, counters=count,
                                                  device_type=device_type))


def _prepare_work(connection: Connection, requests: Sequence[_PrepareRequest]) -> list[_Prepared | Exception]:
    """``GroupCommit`` work: every request's plans and counters, in one transaction (the reservations committed)."""
    out: list[_Prepared | Exception] = []
    for request in requests:
        try:
            out.append(_prepare_in(connection, request))
        except StorageError:
            raise
        except FAILURES as exc:
            out.append(exc)
    return out


#: How long a finished read waits for others to share its transaction, and the most that share one.
#: A pass's sessions end a few milliseconds apart: 50 ms gathers tens of meters per commit.
STORE_LINGER = 0.05
STORE_BATCH = 128
#: Sessions starting together share the transaction that reserves their counters (shorter: it delays them).
PREPARE_LINGER = 0.01


async def _prepare(context: ExecutionContext, items: Sequence[WorkItem]) -> _Prepared:
    request = _PrepareRequest(context, items, context.now().astimezone(UTC))
    batcher = for_loop(context.engine, "n2pload-prepare", _prepare_work, linger=PREPARE_LINGER,
                       max_requests=STORE_BATCH)
    answer = await batcher.submit(request)
    if isinstance(answer, Exception):
        raise answer
    assert isinstance(answer, _Prepared)  # what _prepare_work gives for a request
    return answer


# --- step 2: the session ------------------------------------------------------------------------------------------


def _reader(due: Sequence[tuple[int, Plan, Kind]], reads: list[Any]) -> Any:
    async def body(session: MeterSession, _observations: Observations) -> None:
        for position, plan, kind in due:
            reads[position] = await read_profile(session, kind.obis, plan.start, plan.end,
                                                 shape=ProfileShape.decode(plan.shape_text), status=kind.status)

    return body


# --- step 3: what came back, meters finishing together sharing a transaction --------------------------------------


@dataclass(frozen=True, slots=True)
class _StoreRequest:
    """One session's answers to store: each kind assembled, the session, when, for which run."""

    kinds: Sequence[Assembled]
    session: SessionResult[Any]
    now: datetime
    correlation_id: str | None


def _store_work(connection: Connection, requests: Sequence[_StoreRequest]) -> list[list[ItemOutcome]]:
    """``GroupCommit`` work: the rows of every request, then each one's gaps, watermarks and reachability.

    One insert per table for the rows of all the requests of a run (the store listeners, i.e. the
    CIM outbox, told once), then each statement kind once for all (executemany).
    """
    by_correlation: dict[str | None, list[Assembled]] = {}
    for request in requests:
        by_correlation.setdefault(request.correlation_id, []).extend(request.kinds)
    stored: dict[int, int] = {}
    for correlation_id, assembled in by_correlation.items():
        with correlation(correlation_id):
            counts = store_many(connection, [(a.intervals, a.registers) for a in assembled])
        stored.update((id(a), count) for a, count in zip(assembled, counts, strict=True))
    watermarks: list[tuple[int, str, datetime, int | None, str | None, datetime]] = []
    reached: list[tuple[int, datetime]] = []
    missed: list[tuple[int, datetime, str]] = []
    attempted: list[tuple[int, datetime, str | None]] = []
    out: list[list[ItemOutcome]] = []
    for request in requests:
        now = request.now
        outcomes: list[ItemOutcome] = []
        for a in request.kinds:
            plan, kind, read = a.plan, a.kind, a.read
            if a.found or plan.open_gaps:
                _record_gaps(connection, a, now)
            if kind.profile and a.given_up and stored_listeners():
                with correlation(request.correlation_id):
                    _tell_missing(connection, a)
            if a.mark > plan.start or plan.first or read.shape_read:
                watermarks.append((plan.meter_id, str(kind.obis), a.mark, read.shape.period or None,
                                   read.shape.encode() if read.shape_read else None, now))
            if a.times:
                reached.append((plan.meter_id, now))
            elif a.observations:
                missed.append((plan.meter_id, now, a.observations[0]))
            else:
                # Less than one period was asked for: nothing could be new, no news about the meter.
                attempted.append((plan.meter_id, now, None))
            observations = [*request.session.observations, *a.observations]
            state: Literal["EXE", "WARN"] = "WARN" if observations else "EXE"
            outcomes.append(ItemOutcome(state, tuple(observations), stored=stored[id(a)]))
        out.append(outcomes)
    upsert_watermarks(connection, watermarks)
    record_reached(connection, reached)
    record_misses(connection, missed)
    record_attempts(connection, attempted)
    # Replay floors, and one contact write per DC and transaction (a pass reads hundreds of meters through one DC).
    settle(connection, [(r.session, r.now) for r in requests])
    return out


def _tell_missing(connection: Connection, a: Assembled) -> None:
    """Tell the store listeners (the CIM outbox) which intervals the gaps just declared lost leave missing.

    One ``MissingInterval`` per captured channel and missing interval end, in the storing transaction
    and with the run's correlation. A gap known lost before was told then; an interval that another
    read stored meanwhile (an on-demand read, a field import) is not missing and is left out.
    """
    plan, step = a.plan, timedelta(seconds=a.period)
    missing: list[MissingInterval] = []
    for gap in a.given_up:
        if gap.first in plan.lost_gaps:
            continue
        have = stored_ends(connection, plan.meter_id, gap.first, gap.last)
        for k in range(gap.missing):
            end = gap.first + k * step
            missing.extend(MissingInterval(plan.meter_id, obis, attribute, end) for obis, attribute in a.channels
                           if (obis, attribute, end) not in have)
    if missing:
        notify(connection, StoredBatch(correlation_id=current_correlation(), missing=missing))


def _record_gaps(connection: Connection, a: Assembled, now: datetime) -> None:
    plan, kind = a.plan, a.kind
    obis = str(kind.obis)
    found_by_first = {g.first: g for g in a.found}
    seen = set(a.times)
    last_seen = a.times[-1] if a.times else None
    step = timedelta(seconds=a.period)
    for known in plan.open_gaps:
        gap = found_by_first.get(known.first)
        if gap is not None:
            lost = gap in a.given_up
            update_gap(connection, known.id, known.attempts + 1, gap.last, gap.missing, "lost" if lost else "open",
                       now if lost else None)
            continue
        # Not missing any more where this read covered it: filled (what is still missing is a new gap).
        if last_seen is not None and known.last < last_seen and known.first > plan.start:
            filled = all(known.first + k * step in seen for k in range(int((known.last - known.first) / step) + 1))
            resolve_gap(connection, known.id, "filled" if filled else "lost", now)
            if kind.profile:
                set_after_gap(connection, plan.meter_id, known.last + step, QUALITY_AFTER_GAP, False)
    known_firsts = {g.first for g in plan.open_gaps} | plan.lost_gaps
    for gap in a.found:
        if gap.first in known_firsts:
            continue
        lost = gap in a.given_up
        insert_gap(connection, plan.meter_id, obis, gap.first, gap.last, gap.missing, "lost" if lost else "open", now,
                   now if lost else None)
        if kind.profile:
            # A row already stored before (another read) keeps its first quality: flag it here.
            set_after_gap(connection, plan.meter_id, gap.last + step, QUALITY_AFTER_GAP, True)


def _failed(engine: Engine, plan: Plan, kind: Kind, session: SessionResult[Any] | None, failure: Failure,
            now: datetime) -> ItemOutcome:
    """A FAIL: the attempt recorded with its reason, the DC's contact outcome, and where a first collection starts."""
    with storage_errors(engine), engine.begin() as connection:
        if session is not None:
            settle(connection, [(session, now)])
        record_attempts(connection, [(plan.meter_id, now, failure.reason)])
        if plan.first:
            # The first attempt fixes where collection starts: a later success backfills from there.
            upsert_watermarks(connection, [(plan.meter_id, str(kind.obis), plan.start, None, None, now)])
    return ItemOutcome("FAIL", reason=failure.reason, retryable=failure.retryable,
                       concentrator_unreachable=failure.concentrator_unreachable)


# --- the executors -----------------------------------------------------------------------------------------------


async def collect_meter(context: ExecutionContext, items: Sequence[WorkItem]) -> list[ItemOutcome]:
    """N2PLoad for one meter: its ``profile`` and/or ``daily`` items (module docstring), in ONE session."""
    if not items:
        return []
    if (len({item.meter_id for item in items}) != 1 or len({item.command for item in items}) != len(items)
            or any(item.command not in COMMANDS for item in items)):
        raise ValueError("collect_meter takes the profile and/or daily items of one meter, one per command")
    try:
        prepared = await _prepare(context, items)
    except Refused as refused:
        failure = refusal(refused.reason, refused.retryable)
        return [ItemOutcome("FAIL", reason=failure.reason, retryable=failure.retryable) for _ in items]
    except StorageError:
        raise
    except FAILURES as exc:
        failure = refusal(str(exc), bool(getattr(exc, "retryable", False)))
        return [ItemOutcome("FAIL", reason=failure.reason, retryable=failure.retryable) for _ in items]
    plans, kinds = prepared.plans, prepared.kinds
    due = [(position, plan, kind) for position, (plan, kind) in enumerate(zip(plans, kinds, strict=True)) if plan.due]
    if not due or prepared.prepared is None:
        return [ItemOutcome("EXE") for _ in items]
    runner = context.runner()
    reads: list[Any] = [None] * len(items)
    session = await runner.session(prepared.prepared, _reader(due, reads))
    crash_point("n2pload-before-store")
    now = context.now().astimezone(UTC)
    outcomes: list[ItemOutcome | None] = [None] * len(items)
    stores: list[tuple[int, Assembled]] = []
    for position, plan, kind in due:
        read = reads[position]
        if read is None:
            continue
        try:
            stores.append((position, assemble(plan, kind, read)))
        except FAILURES as exc:  # a corrupted answer (a value that is not an integer)
            failure = classify(exc, session.target, associated=True)
            outcomes[position] = ItemOutcome("FAIL", reason=failure.reason, retryable=failure.retryable)
    if stores:
        request = _StoreRequest([a for _, a in stores], session, now, current_correlation())
        batcher = for_loop(context.engine, "n2pload-store", _store_work, linger=STORE_LINGER,
                           max_requests=STORE_BATCH)
        for (position, _), outcome in zip(stores, await batcher.submit(request), strict=True):
            outcomes[position] = outcome
    failure = session.failure or refusal("the read gave no result", True)
    settled = bool(stores)
    for position, plan, kind in due:
        if outcomes[position] is None:
            # The session's contact, floor and clock are stored once: with the rows, or with the first FAIL.
            outcomes[position] = _failed(context.engine, plan, kind, None if settled else session, failure, now)
            settled = True
    return [outcome if outcome is not None else ItemOutcome("EXE") for outcome in outcomes]


async def collect_profile(context: ExecutionContext, item: WorkItem) -> ItemOutcome:
    """N2PLoad for one meter: load profile 1.0.99.1.0.255 intervals after its watermark (module docstring)."""
    (outcome,) = await collect_meter(context, [item])
    return outcome


async def collect_daily(context: ExecutionContext, item: WorkItem) -> ItemOutcome:
    """Daily values 1.0.98.1.0.255 after the meter's daily watermark (module docstring)."""
    (outcome,) = await collect_meter(context, [item])
    return outcome


class N2PLoadExecutor:
    """``profile`` or ``daily`` as the plan engine runs them: a meter's N2PLoad items claimed together
    share one session (``collect_meter``), an item alone is collected alone (``scheduler.contract.GroupExecutor``)."""

    together = "n2pload"

    def __init__(self, command: Literal["profile", "daily"]) -> None:
        self.command = command

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        (outcome,) = await collect_meter(context, [item])
        return outcome

    async def many(self, context: ExecutionContext, items: Sequence[WorkItem]) -> list[ItemOutcome]:
        return await collect_meter(context, items)

