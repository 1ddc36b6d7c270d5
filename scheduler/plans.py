"""Plans: their definition and checks, the built-in ones, tags, and starting a run (selection, support check, items).

``Plans(engine)`` creates, lists and shows plans and starts runs. Starting a run resolves the
plan's selection now (a meter registered a minute ago is in it), checks that each meter supports
each command (``scheduler.capabilities``: an unsupported one is recorded UNSUPPORTED and never
run), and writes one work item per (meter, command) in one bulk insert, interleaving concentrators
so that a worker's claim spreads over many DCs. The two built-in plans are created on first use:
``default-daily`` (the daily values of every commissioned meter, once a day: a meter is in it the
moment it is registered) and ``n2pload`` (the load profile of every meter behind a concentrator,
every 15 minutes).

A plan that disconnects (``disconnect`` among its commands) more than one meter is a bulk
disconnect: ``create`` and ``start_run`` take the number of meters its user confirmed
(``confirmed_meters``, from ``--confirm-disconnect``) and refuse a selection holding more
(``DisconnectNotConfirmed``). The plan row keeps who confirmed, when, and for how many meters; a
scheduled run (no confirmation of its own) runs on that, and when the selection has grown beyond it
the run is stored ``refused`` with the reason in its notes, and nothing is sent.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from hes.db.engine import StorageError, session_factory, storage_errors
from hes.db.models import Concentrator, Meter, utcnow
from hes.db.orders import record_audit
from hes.devicetypes import DeviceTypeError, catalogue
from hes.errors import HesError
from scheduler.capabilities import meter_objects, missing_object
from scheduler.contract import COMMANDS, RELAY_COMMANDS, Command
from scheduler.models import ITEM_FINAL_STATES, SELECTION_KINDS, TRIGGER_KINDS, MeterTag, Plan, PlanItem, PlanRun

__all__ = [
    "DEFAULT_DAILY",
    "N2PLOAD",
    "DisconnectNotConfirmed",
    "ItemResult",
    "PlanError",
    "PlanInfo",
    "PlanSpec",
    "Plans",
    "RunInfo",
    "UnknownPlan",
    "next_opening",
    "parse_commands",
    "parse_duration",
    "parse_range",
    "parse_window",
    "resolve_range",
    "window_open",
]

logger = logging.getLogger(__name__)

DEFAULT_DAILY = "default-daily"
N2PLOAD = "n2pload"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h|d)$")
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_INSERT_CHUNK = 1000


class PlanError(HesError):
    """A plan defined or asked for wrongly (bad option, unknown concentrator, empty selection): fix the request."""


class DisconnectNotConfirmed(PlanError):
    """A disconnect over more meters than its user confirmed: confirm (again) with the count in view."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


class UnknownPlan(PlanError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no plan {name!r} (hes plan list shows them)")
        self.name = name


# --- parsing and checking -----------------------------------------------------------------------------


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from "90", "30s", "15m", "1h", "2d" (``PlanError`` otherwise)."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise PlanError(f"{what} {text!r} is not a duration (e.g. 30s, 15m, 1h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_commands(text: str) -> tuple[Command, ...]:
    """Commands, comma-separated, put in execution order (``COMMANDS``); unknown or none: ``PlanError``."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in COMMANDS]
    if unknown:
        raise PlanError(f"unknown command {', '.join(unknown)} (known: {', '.join(COMMANDS)})")
    if not names:
        raise PlanError(f"no command given (known: {', '.join(COMMANDS)})")
    return tuple(command for command in COMMANDS if command in names)


def parse_window(text: str | None) -> tuple[str, str] | None:
    """A daily window "HH:MM-HH:MM" (UTC; may cross midnight) as two "HH:MM" strings."""
    if text is None:
        return None
    match = _WINDOW.match(text.strip())
    if match is None:
        raise PlanError(f"--window {text!r} is not HH:MM-HH:MM (UTC, e.g. 01:00-05:00)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise PlanError(f"--window {text!r}: hours 00-23, minutes 00-59")
    if (h1, m1) == (h2, m2):
        raise PlanError(f"--window {text!r} is empty (start equals end)")
    return f"{h1:02d}:{m1:02d}", f"{h2:02d}:{m2:02d}"


def parse_range(option: str, text: str | None) -> str | None:
    """A range bound as stored: "now", a relative "-1d"/"-6h", or an ISO instant (normalised to UTC)."""
    if text is None:
        return None
    value = text.strip()
    if value == "now" or _RELATIVE.match(value):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PlanError(f"{option} {text!r} is not an ISO 8601 time, 'now' or a relative time like -1d") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def resolve_range(value: str | None, now: datetime) -> datetime | None:
    """The instant a stored range bound means at ``now``."""
    if value is None:
        return None
    if value == "now":
        return now
    match = _RELATIVE.match(value)
    if match is not None:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    return datetime.fromisoformat(value).astimezone(UTC)


def _clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def window_open(window: tuple[str, str] | None, now: datetime) -> bool:
    """Whether ``now`` (UTC) lies in the daily window [start, end)."""
    if window is None:
        return True
    start, end = _clock_time(window[0]), _clock_time(window[1])
    moment = now.astimezone(UTC).time()
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # across midnight


def next_opening(window: tuple[str, str] | None, now: datetime) -> datetime:
    """``now`` if the window is open, else when it next opens."""
    if window is None or window_open(window, now):
        return now
    start = _clock_time(window[0])
    today = now.astimezone(UTC).replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def _check_trigger(kind: str | None, value: str | None) -> None:
    if kind is None:
        return
    if kind not in TRIGGER_KINDS or value is None:
        raise PlanError(f"trigger {kind!r} is not one of {', '.join(TRIGGER_KINDS)}")
    # Imported here: building the trigger is the check APScheduler itself will make.
    from scheduler.service import build_trigger

    build_trigger(kind, value)


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """What ``hes plan create`` asks for, checked by ``Plans.create``."""

    name: str
    selection_kind: str
    selection: Any = None
    commands: tuple[Command, ...] = ("daily",)
    range_from: str | None = None
    range_to: str | None = None
    window: tuple[str, str] | None = None
    retries: int = 0
    retry_delay_s: float = 300.0
    priority: int = 0
    trigger_kind: str | None = None
    trigger_value: str | None = None


@dataclass(frozen=True, slots=True)
class PlanInfo:
    name: str
    selection_kind: str
    selection: Any
    commands: tuple[Command, ...]
    range_from: str | None
    range_to: str | None
    window: tuple[str, str] | None
    retries: int
    retry_delay_s: float
    priority: int
    trigger_kind: str | None
    trigger_value: str | None
    enabled: bool
    builtin: bool
    created_at: datetime
    disconnect_confirmed_by: str | None = None
    disconnect_confirmed_at: datetime | None = None
    disconnect_confirmed_meters: int | None = None

    @property
    def relay(self) -> bool:
        """Whether the plan switches supply (disconnect or reconnect): its runs need the disconnect role."""
        return any(command in RELAY_COMMANDS for command in self.commands)

    @property
    def confirmation_text(self) -> str | None:
        if self.disconnect_confirmed_by is None:
            return None
        return (f"disconnect of up to {self.disconnect_confirmed_meters} meters confirmed by "
                f"{self.disconnect_confirmed_by} at {_iso(self.disconnect_confirmed_at)}")

    @property
    def selection_text(self) -> str:
        if self.selection_kind == "list":
            serials = cast(list[str], self.selection)
            return f"list of {len(serials)} meters"
        if self.selection_kind in ("concentrator", "tag"):
            return f"{self.selection_kind} {self.selection}"
        return "all commissioned meters" if self.selection_kind == "all" else "every meter behind a concentrator"

    @property
    def trigger_text(self) -> str:
        return "manual" if self.trigger_kind is None else f"{self.trigger_kind} {self.trigger_value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "selection": {"kind": self.selection_kind, "value": self.selection},
            "commands": list(self.commands), "from": self.range_from, "to": self.range_to,
            "window": None if self.window is None else f"{self.window[0]}-{self.window[1]}",
            "retries": self.retries, "retry_delay_s": self.retry_delay_s, "priority": self.priority,
            "trigger": None if self.trigger_kind is None else {"kind": self.trigger_kind, "value": self.trigger_value},
            "enabled": self.enabled, "builtin": self.builtin, "created_at": _iso(self.created_at),
            "disconnect_confirmation": None if self.disconnect_confirmed_by is None else {
                "by": self.disconnect_confirmed_by, "at": _iso(self.disconnect_confirmed_at),
                "meters": self.disconnect_confirmed_meters},
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One meter's result for one command in a run."""

    serial: str
    concentrator_id: str | None
    command: str
    state: str
    attempts: int
    observations: str | None
    reason: str | None
    retryable: bool
    stored: int
    next_attempt_at: datetime | None
    finished_at: datetime | None
    worked_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial, "concentrator": self.concentrator_id, "command": self.command,
            "state": self.state, "attempts": self.attempts, "worker": self.worked_by,
            "observations": [] if not self.observations else self.observations.split("; "),
            "reason": self.reason, "retryable": self.retryable, "stored": self.stored,
            "next_attempt_at": _iso(self.next_attempt_at) if self.state == "PENDING" else None,
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A plan run and its counts (live while it runs; the stored summary once done)."""

    id: int
    plan: str
    trigger: str
    state: str
    selection_kind: str
    selection: Any
    commands: tuple[str, ...]
    range_start: datetime | None
    range_end: datetime | None
    window: tuple[str, str] | None
    retries: int
    retry_delay_s: float
    created_at: datetime
    finished_at: datetime | None
    notes: str | None
    counts: dict[str, int] = field(default_factory=dict)
    meters: int = 0
    stored: int = 0

    @property
    def correlation_id(self) -> str:
        return f"run:{self.id}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(count for state, count in self.counts.items() if state in ITEM_FINAL_STATES)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.id, "plan": self.plan, "trigger": self.trigger, "state": self.state,
            "correlation_id": self.correlation_id,
            "selection": {"kind": self.selection_kind, "value": self.selection}, "commands": list(self.commands),
            "from": _iso(self.range_start), "to": _iso(self.range_end),
            "window": None if self.window is None else f"{self.window[0]}-{self.window[1]}",
            "retries": self.retries, "retry_delay_s": self.retry_delay_s,
            "created_at": _iso(self.created_at), "finished_at": _iso(self.finished_at),
            "notes": [] if not self.notes else self.notes.splitlines(),
            "summary": {"items": self.total, "meters": self.meters, "stored": self.stored,
                        **{state: self.counts.get(state, 0) for state in ("EXE", "WARN", "FAIL", "UNSUPPORTED",
                                                                         "PENDING", "RUNNING")}},
        }


_BUILTINS: tuple[PlanSpec, ...] = (
    # The daily closure is written at the meter's local midnight; 01:30 UTC leaves the DCs time to read it.
    PlanSpec(DEFAULT_DAILY, "all", None, ("daily",), retries=2, retry_delay_s=1800.0, trigger_kind="cron",
             trigger_value="30 1 * * *"),
    PlanSpec(N2PLOAD, "concentrators", None, ("profile",), retries=2, retry_delay_s=60.0, priority=10,
             trigger_kind="interval", trigger_value="15m"),
)


def _window(row: Plan | PlanRun) -> tuple[str, str] | None:
    if row.window_start is None or row.window_end is None:
        return None
    return row.window_start, row.window_end


def _plan_info(row: Plan) -> PlanInfo:
    return PlanInfo(
        name=row.name, selection_kind=row.selection_kind, selection=row.selection,
        commands=cast(tuple[Command, ...], tuple(row.commands.split(","))), range_from=row.range_from,
        range_to=row.range_to, window=_window(row), retries=row.retries, retry_delay_s=row.retry_delay_s,
        priority=row.priority, trigger_kind=row.trigger_kind, trigger_value=row.trigger_value,
        enabled=row.enabled, builtin=row.builtin, created_at=row.created_at,
        disconnect_confirmed_by=row.disconnect_confirmed_by, disconnect_confirmed_at=row.disconnect_confirmed_at,
        disconnect_confirmed_meters=row.disconnect_confirmed_meters,
    )


class Plans:
    """Plans and runs in the HES database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._clock = clock
        self._builtins_checked = False

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with storage_errors(self.engine), self._sessions() as session, session.begin():
            yield session

    # --- plans ---------------------------------------------------------------------------------------

    def ensure_builtin(self) -> None:
        """Create the built-in plans if they are missing (idempotent; a second worker racing is harmless)."""
        if self._builtins_checked:
            return
        names = [spec.name for spec in _BUILTINS]
        try:
            with self._session() as session:
                known = set(session.scalars(select(Plan.name).where(Plan.name.in_(names))))
                for spec in _BUILTINS:
                    if spec.name not in known:
                        session.add(self._row(spec, builtin=True, who="system"))
        except StorageError:
            # Another process created them between our check and our insert (a unique name): fine if so.
            with self._session() as session:
                if len(set(session.scalars(select(Plan.name).where(Plan.name.in_(names))))) != len(names):
                    raise
        self._builtins_checked = True

    def _row(self, spec: PlanSpec, *, builtin: bool, who: str) -> Plan:
        now = self._clock()
        return Plan(
            name=spec.name, selection_kind=spec.selection_kind, selection=spec.selection,
            commands=",".join(spec.commands), range_from=spec.range_from, range_to=spec.range_to,
            window_start=None if spec.window is None else spec.window[0],
            window_end=None if spec.window is None else spec.window[1],
            retries=spec.retries, retry_delay_s=spec.retry_delay_s, priority=spec.priority,
            trigger_kind=spec.trigger_kind, trigger_value=spec.trigger_value, enabled=True, builtin=builtin,
            created_by=who, created_at=now, updated_at=now,
        )

    def _check(self, session: Session, spec: PlanSpec) -> None:
        if not _NAME.match(spec.name):
            raise PlanError(f"plan name {spec.name!r}: 1-64 letters, digits, '_', '.', ':' or '-'")
        if spec.selection_kind not in SELECTION_KINDS:
            raise PlanError(f"selection {spec.selection_kind!r} is not one of {', '.join(SELECTION_KINDS)}")
        if spec.selection_kind == "list":
            serials = spec.selection
            if not isinstance(serials, list) or not serials or not all(isinstance(s, str) for s in serials):
                raise PlanError("a meter list needs at least one serial")
        elif spec.selection_kind == "concentrator":
            if session.get(Concentrator, spec.selection) is None:
                raise PlanError(f"no concentrator {spec.selection!r} in the registry")
        elif spec.selection_kind == "tag" and (not isinstance(spec.selection, str)
                                               or not _NAME.match(spec.selection)):
            raise PlanError(f"tag {spec.selection!r}: 1-64 letters, digits, '_', '.', ':' or '-'")
        if not spec.commands or any(c not in COMMANDS for c in spec.commands):
            raise PlanError(f"commands must be some of {', '.join(COMMANDS)}")
        if all(command in spec.commands for command in RELAY_COMMANDS):
            # One run would open the relays and close them again a moment later: surely not what was meant.
            raise PlanError("a plan disconnects or reconnects, not both")
        if spec.retries < 0 or spec.retries > 100:
            raise PlanError(f"--retries {spec.retries}: 0 to 100")
        if spec.retry_delay_s < 0:
            raise PlanError("--retry-delay cannot be negative")
        start, end = resolve_range(spec.range_from, self._clock()), resolve_range(spec.range_to, self._clock())
        if start is not None and end is not None and start >= end:
            raise PlanError(f"--from {spec.range_from} is not before --to {spec.range_to}")
        _check_trigger(spec.trigger_kind, spec.trigger_value)
        if spec.trigger_kind == "date" and spec.trigger_value is not None:
            at = datetime.fromisoformat(spec.trigger_value)
            if (at if at.tzinfo else at.replace(tzinfo=UTC)) < self._clock() - timedelta(minutes=1):
                raise PlanError(f"--at {spec.trigger_value} is in the past")

    def create(self, spec: PlanSpec, *, who: str = "system", confirmed_meters: int | None = None) -> PlanInfo:
        """Store a new plan (``PlanError`` if the name is taken or a value is wrong).

        A plan that disconnects more than one meter needs ``confirmed_meters`` (the count its user
        confirmed) at least as large as its selection now (``DisconnectNotConfirmed`` otherwise);
        the confirmation is stored with ``who`` and the time.
        """
        self.ensure_builtin()
        with self._session() as session:
            self._check(session, spec)
            if session.scalar(select(Plan.id).where(Plan.name == spec.name)) is not None:
                raise PlanError(f"a plan named {spec.name!r} exists already")
            row = self._row(spec, builtin=False, who=who)
            if "disconnect" in spec.commands:
                count = self._count(session, spec.selection_kind, spec.selection)
                if count > max(1, confirmed_meters or 0):
                    raise DisconnectNotConfirmed(
                        f"plan {spec.name} disconnects {count} meters but "
                        f"{'none was' if confirmed_meters is None else f'{confirmed_meters} were'} confirmed: "
                        "confirm with --confirm-disconnect", count)
                if confirmed_meters is not None:
                    row.disconnect_confirmed_by, row.disconnect_confirmed_at = who, self._clock()
                    row.disconnect_confirmed_meters = confirmed_meters
            session.add(row)
            record_audit(session, who, f"plan create {spec.name}", "OK", when=self._clock())
            session.flush()
            return _plan_info(row)

    def list_plans(self) -> list[PlanInfo]:
        self.ensure_builtin()
        with self._session() as session:
            return [_plan_info(row) for row in session.scalars(select(Plan).order_by(Plan.name))]

    def get(self, name: str) -> PlanInfo:
        self.ensure_builtin()
        with self._session() as session:
            row = session.scalar(select(Plan).where(Plan.name == name))
            if row is None:
                raise UnknownPlan(name)
            return _plan_info(row)

    def selection_size(self, kind: str, selection: Any) -> int:
        """How many meters a selection holds now (commissioned ones: the meters a run would contact)."""
        with self._session() as session:
            return self._count(session, kind, selection)

    def run_size(self, name: str, *, concentrator: str | None = None) -> int:
        """How many meters a run of plan ``name`` would contact if it started now."""
        plan = self.get(name)
        if concentrator is not None:
            return self.selection_size("concentrator", concentrator)
        return self.selection_size(plan.selection_kind, plan.selection)

    @staticmethod
    def _count(session: Session, kind: str, selection: Any) -> int:
        """The commissioned meters of a selection: the same meters ``_select`` gives a run PENDING items."""
        query = select(func.count()).select_from(Meter).where(Meter.state == "commissioned")
        if kind == "list":
            serials = list(dict.fromkeys(cast(list[str], selection or [])))
            return sum(int(session.scalar(query.where(Meter.serial.in_(serials[start:start + 500]))) or 0)
                       for start in range(0, len(serials), 500))
        if kind == "concentrator":
            query = query.where(Meter.concentrator_id == selection)
        elif kind == "concentrators":
            query = query.where(Meter.concentrator_id.is_not(None))
        elif kind == "tag":
            query = query.join(MeterTag, MeterTag.meter_id == Meter.id).where(MeterTag.tag == selection)
        return int(session.scalar(query) or 0)

    def scheduled(self) -> list[PlanInfo]:
        """Enabled plans with a trigger (what the scheduler service keeps jobs for)."""
        return [plan for plan in self.list_plans() if plan.enabled and plan.trigger_kind is not None]

    # --- tags ----------------------------------------------------------------------------------------

    def tag(self, tag: str, serials: Sequence[str], *, remove: bool = False, who: str = "system") -> int:
        """Add (or remove) ``tag`` on meters; returns how many meters changed. Unknown serials: ``PlanError``."""
        if not _NAME.match(tag):
            raise PlanError(f"tag {tag!r}: 1-64 letters, digits, '_', '.', ':' or '-'")
        with self._session() as session:
            ids = self._meter_ids(session, serials)
            unknown = [serial for serial in serials if serial not in ids]
            if unknown:
                raise PlanError(f"not registered: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
            tagged = set(session.scalars(select(MeterTag.meter_id).where(MeterTag.tag == tag)))
            if remove:
                chosen = [i for i in ids.values() if i in tagged]
                if chosen:
                    session.execute(delete(MeterTag).where(MeterTag.tag == tag, MeterTag.meter_id.in_(chosen)))
            else:
                chosen = [i for i in ids.values() if i not in tagged]
                if chosen:
                    session.execute(insert(MeterTag), [{"meter_id": i, "tag": tag} for i in chosen])
            record_audit(session, who, f"plan tag {'remove ' if remove else ''}{tag} ({len(serials)} meters)",
                         f"OK {len(chosen)} changed", when=self._clock())
            return len(chosen)

    @staticmethod
    def _meter_ids(session: Session, serials: Sequence[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        unique = list(dict.fromkeys(serials))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            query = select(Meter.serial, Meter.id).where(Meter.serial.in_(chunk))
            ids.update((serial, meter_id) for serial, meter_id in session.execute(query))
        return ids

    # --- runs ----------------------------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        *,
        trigger: Literal["manual", "schedule", "n2pload"] = "manual",
        who: str = "system",
        concentrator: str | None = None,
        commands: tuple[Command, ...] | None = None,
        confirmed_meters: int | None = None,
    ) -> RunInfo:
        """Start a run of plan ``name`` now: resolve its meters, check support, write its items.

        ``concentrator`` narrows the selection to one DC's meters (``hes n2pload --concentrator``);
        ``commands`` replaces the plan's commands for this run. A disconnect over more than one meter
        runs on ``confirmed_meters`` (confirmed by ``who`` for this run) or, when None, on the plan's
        stored confirmation; a selection holding more meters than that is stored as a ``refused`` run
        (its notes say why, an audit row too) and nothing is sent.
        """
        self.ensure_builtin()
        now = self._clock()
        with self._session() as session:
            plan = session.scalar(select(Plan).where(Plan.name == name))
            if plan is None:
                raise UnknownPlan(name)
            kind, selection = plan.selection_kind, plan.selection
            if concentrator is not None:
                if session.get(Concentrator, concentrator) is None:
                    raise PlanError(f"no concentrator {concentrator!r} in the registry")
                kind, selection = "concentrator", concentrator
            chosen = commands or cast(tuple[Command, ...], tuple(plan.commands.split(",")))
            window = _window(plan)
            run = PlanRun(
                plan_id=plan.id, trigger=trigger, selection_kind=kind, selection=selection,
                commands=",".join(chosen), range_start=resolve_range(plan.range_from, now),
                range_end=resolve_range(plan.range_to, now), window_start=plan.window_start,
                window_end=plan.window_end, retries=plan.retries, retry_delay_s=plan.retry_delay_s,
                priority=plan.priority, state="running", created_by=who, created_at=now,
            )
            session.add(run)
            session.flush()
            meters, notes = self._select(session, kind, selection)
            refusal: str | None = None
            if "disconnect" in chosen:
                refusal, note = self._disconnect_check(plan, meters, who, now, confirmed_meters)
                if note is not None:
                    notes.append(note)
            if refusal is not None:
                # Stored, not raised: a scheduled run refused is visible in hes plan show, with its reason.
                run.state, run.finished_at = "refused", now
                run.notes = "\n".join([*notes, refusal])
                run.summary = {"counts": {}, "meters": 0, "stored": 0}
                record_audit(session, who, f"plan run {name} (run:{run.id})", f"REFUSED: {refusal}", when=now)
                logger.warning("plan %s, run %d: %s", name, run.id, refusal)
            else:
                # Written in chunks as they are made: a million meters never make a million dicts at once.
                count = pending = 0
                chunk: list[dict[str, Any]] = []
                for item in self._items(session, run, meters, chosen, next_opening(window, now)):
                    chunk.append(item)
                    pending += item["state"] == "PENDING"
                    if len(chunk) == _INSERT_CHUNK:
                        session.execute(insert(PlanItem), chunk)
                        count, chunk = count + len(chunk), []
                if chunk:
                    session.execute(insert(PlanItem), chunk)
                    count += len(chunk)
                run.notes = "\n".join(notes) or None
                record_audit(session, who, f"plan run {name} (run:{run.id})",
                             f"started: {len(meters)} meters, {count} items", when=now)
                if not pending:
                    self._finish(session, run.id, now)
            run_id = run.id
        return self.run_info(run_id)

    @staticmethod
    def _disconnect_check(plan: Plan, meters: Sequence[Any], who: str, now: datetime,
                          confirmed_meters: int | None) -> tuple[str | None, str | None]:
        """(why the run must not disconnect, None if it may; a note naming the confirmation it runs on)."""
        count = sum(1 for meter in meters if meter.state == "commissioned")
        if count <= 1:
            return None, None
        if confirmed_meters is not None:
            if count <= confirmed_meters:
                return None, f"disconnect of {count} meters confirmed by {who} at {_iso(now)} for this run"
            return (f"not run: the selection holds {count} meters to disconnect, {confirmed_meters} were confirmed; "
                    f"confirm again with the count in view (hes plan run {plan.name} --confirm-disconnect)"), None
        stored = plan.disconnect_confirmed_meters
        if stored is not None and count <= stored:
            return None, (f"disconnect of {count} meters on the confirmation of {plan.disconnect_confirmed_by} "
                          f"at {_iso(plan.disconnect_confirmed_at)} (up to {stored} meters)")
        given = ("no confirmation covers more than one meter" if stored is None else
                 f"the plan's confirmation by {plan.disconnect_confirmed_by} at {_iso(plan.disconnect_confirmed_at)} "
                 f"covers {stored}")
        return (f"not run: the selection holds {count} meters to disconnect and {given}; "
                f"run it by hand with --confirm-disconnect (hes plan run {plan.name}), or create a plan confirmed "
                f"for the larger selection"), None

    def _select(self, session: Session, kind: str, selection: Any) -> tuple[list[Any], list[str]]:
        """The meters (rows of id, serial, DC, state, make, model) of a selection, and notes on what is missing."""
        columns = (Meter.id, Meter.serial, Meter.concentrator_id, Meter.state, Meter.make, Meter.model, Meter.firmware,
                   Meter.device_type)
        notes: list[str] = []
        if kind == "list":
            serials = list(dict.fromkeys(cast(list[str], selection)))
            rows: list[Any] = []
            for start in range(0, len(serials), 500):
                rows += session.execute(select(*columns).where(Meter.serial.in_(serials[start:start + 500]))).all()
            found = {row.serial for row in rows}
            unknown = [serial for serial in serials if serial not in found]
            if unknown:
                notes.append(f"{len(unknown)} meters of the list are not registered: {', '.join(unknown[:20])}"
                             f"{' ...' if len(unknown) > 20 else ''}")
            return rows, notes
        query = select(*columns).where(Meter.state == "commissioned")
        if kind == "concentrator":
            query = query.where(Meter.concentrator_id == selection)
        elif kind == "concentrators":
            query = query.where(Meter.concentrator_id.is_not(None))
        elif kind == "tag":
            query = query.join(MeterTag, MeterTag.meter_id == Meter.id).where(MeterTag.tag == selection)
        return list(session.execute(query.order_by(Meter.id))), notes

    def _items(self, session: Session, run: PlanRun, meters: Sequence[Any], commands: Sequence[Command],
               due: datetime) -> Iterator[dict[str, Any]]:
        """Work item rows: DCs interleaved, a meter's commands in order; unsupported and unserviceable ones final."""
        types = catalogue(session)
        known = meter_objects(session, [m.id for m in meters])
        by_dc: dict[str | None, list[Any]] = defaultdict(list)
        for meter in meters:
            by_dc[meter.concentrator_id].append(meter)
        # Round robin over concentrators (each point-to-point meter counts as its own line).
        queues = [queue for dc, queue in sorted(by_dc.items(), key=lambda kv: kv[0] or "") if dc is not None]
        queues += [[meter] for meter in by_dc.get(None, [])]
        depth = max((len(queue) for queue in queues), default=0)
        ordered = (queue[index] for index in range(depth) for queue in queues if index < len(queue))
        now = run.created_at
        for meter in ordered:
            objects, source = known.get(meter.id, (None, None))
            try:
                device_type = types.for_meter(meter.device_type, meter.make, meter.model, meter.firmware)
            except DeviceTypeError:
                device_type = None  # an unknown type name: the executor says so, with the meter
            for command in commands:
                item: dict[str, Any] = {
                    "run_id": run.id, "meter_id": meter.id, "serial": meter.serial,
                    "concentrator_id": meter.concentrator_id, "command": command, "priority": run.priority,
                    "state": "PENDING", "attempts": 0, "next_attempt_at": due, "retryable": False, "stored": 0,
                    "observations": None, "reason": None, "finished_at": None,
                }
                if meter.state != "commissioned":
                    item.update(state="FAIL", finished_at=now,
                                reason=f"meter {meter.serial} is {meter.state}, not commissioned: not run")
                elif device_type is not None:
                    absent = missing_object(command, device_type, objects)
                    if absent is not None:
                        why = source or f"device type {device_type.name}"
                        item.update(state="UNSUPPORTED", finished_at=now,
                                    reason=f"not supported: meter {meter.serial} has no {absent} ({why}); not run")
                yield item

    def _finish(self, session: Session, run_id: int, now: datetime) -> bool:
        """Close the run if every item is final: state done and its summary (False while work remains)."""
        counts = {state: count for state, count in session.execute(
            select(PlanItem.state, func.count()).where(PlanItem.run_id == run_id).group_by(PlanItem.state))}
        if any(state not in ITEM_FINAL_STATES for state in counts):
            return False
        meters, stored = session.execute(
            select(func.count(func.distinct(PlanItem.meter_id)), func.coalesce(func.sum(PlanItem.stored), 0))
            .where(PlanItem.run_id == run_id)).one()
        summary = {"counts": {state: int(count) for state, count in counts.items()}, "meters": int(meters),
                   "stored": int(stored)}
        result = session.execute(update(PlanRun).where(PlanRun.id == run_id, PlanRun.state == "running")
                                 .values(state="done", finished_at=now, summary=summary))
        return bool(getattr(result, "rowcount", 0))

    def finish_if_done(self, run_ids: Iterable[int]) -> list[int]:
        """Close every given run whose items are all final; the ids closed now."""
        closed: list[int] = []
        with self._session() as session:
            open_runs = set(session.scalars(select(PlanRun.id).where(PlanRun.id.in_(list(run_ids)),
                                                                      PlanRun.state == "running")))
            for run_id in sorted(open_runs):
                if self._finish(session, run_id, self._clock()):
                    closed.append(run_id)
        return closed

    def run_info(self, run_id: int) -> RunInfo:
        with self._session() as session:
            row = session.execute(select(PlanRun, Plan.name).join(Plan, Plan.id == PlanRun.plan_id)
                                  .where(PlanRun.id == run_id)).one_or_none()
            if row is None:
                raise PlanError(f"no plan run {run_id}")
            run, plan_name = row
            if run.state == "done" and run.summary:
                counts, meters, stored = run.summary["counts"], run.summary["meters"], run.summary["stored"]
            else:
                counts = {state: count for state, count in session.execute(
                    select(PlanItem.state, func.count()).where(PlanItem.run_id == run_id).group_by(PlanItem.state))}
                meters, stored = session.execute(
                    select(func.count(func.distinct(PlanItem.meter_id)), func.coalesce(func.sum(PlanItem.stored), 0))
                    .where(PlanItem.run_id == run_id)).one()
            return RunInfo(
                id=run.id, plan=plan_name, trigger=run.trigger, state=run.state, selection_kind=run.selection_kind,
                selection=run.selection, commands=tuple(run.commands.split(",")), range_start=run.range_start,
                range_end=run.range_end, window=_window(run), retries=run.retries, retry_delay_s=run.retry_delay_s,
                created_at=run.created_at, finished_at=run.finished_at, notes=run.notes,
                counts={k: int(v) for k, v in counts.items()}, meters=int(meters), stored=int(stored),
            )

    def runs(self, name: str, limit: int = 10) -> list[RunInfo]:
        """The plan's latest runs, newest first."""
        self.get(name)
        with self._session() as session:
            ids = list(session.scalars(select(PlanRun.id).join(Plan, Plan.id == PlanRun.plan_id)
                                       .where(Plan.name == name).order_by(PlanRun.id.desc()).limit(limit)))
        return [self.run_info(run_id) for run_id in ids]

    def items(self, run_id: int) -> list[ItemResult]:
        """Every item of a run, in execution order."""
        with self._session() as session:
            rows = session.execute(
                select(PlanItem.serial, PlanItem.concentrator_id, PlanItem.command, PlanItem.state, PlanItem.attempts,
                       PlanItem.observations, PlanItem.reason, PlanItem.retryable, PlanItem.stored,
                       PlanItem.next_attempt_at, PlanItem.finished_at, PlanItem.worked_by)
                .where(PlanItem.run_id == run_id).order_by(PlanItem.id))
            return [ItemResult(*row) for row in rows]

