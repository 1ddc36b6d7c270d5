"""Commands on one meter as orders: remote disconnect and reconnect (IC 70) and clock synchronisation.

Each command is an order of the one order runner (``hes.runner.OrderRunner``): created PENDING and
committed before the meter is contacted, so a process killed at any point leaves a trace; then the
use case's checks (the meter exists, is commissioned, has a link, its DC is not known to be down),
the session, and the result EXE / WARN / FAIL with its observations or reason, together with one
audit row (who, what, result), in one transaction.

Disconnect and reconnect run IC 70 methods 1 and 2 on 0.0.96.3.10.255 (through the concentrator's
gateway for a DC meter, end to end with the meter's own security), then read back output_state,
control_state and control_mode: EXE when the relay is where the order wanted it, WARN when it is not
(a reconnect that leaves the relay ready_for_reconnection, in the control modes where the customer
must close it at the meter, is the usual case: the observation says manual reconnection is needed).
Clock sync reads the clock, and when it is off by more than the tolerance, writes the head-end's
time at the meter's own deviation, then reads it back.

A relay order whose read-back disagrees with it (or cannot be read back) is a WARN and raises an
alarm: a message on the meter's MQTT alarm topic (``hes.events.outbox``), queued in the order's
own transaction with the result, which goes to the command topic.

Invocation counters are reserved (committed with the PENDING order) before the session starts, so a
crash can never make the head-end send a counter twice; the last counter received from the meter
is stored with the result. ``HES_CRASH_AT=command-before-store`` (``hes.crash``) kills the process
between the exchange and that storage, for the crash-safety test.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from concentrator.clock import ClockCheck
from hes.db.concentrators import record_clock
from hes.db.models import utcnow
from hes.events.catalog import CatalogError, default_catalog, load_catalog
from hes.events.outbox import command_message, order_alarm_message, queue
from hes.registry import Registry
from hes.runner import Announcement, Finish, Job, Observations, OrderRunner
from hes.session import MeterSession, Timeouts
from hes.slots import Gate
from protocols.axdr import Data, DataTag
from protocols.cosem import ControlMode, ControlState
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, ServiceError
from protocols.obis import ObisCode

__all__ = [
    "CLOCK",
    "COMMANDS",
    "COUNTERS_PER_COMMAND",
    "DEFAULT_TOLERANCE",
    "DISCONNECT_CONTROL",
    "CommandName",
    "CommandResult",
    "Commands",
    "RelayState",
    "current_user",
]

logger = logging.getLogger(__name__)

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
DISCONNECT_CONTROL = ObisCode(0, 0, 96, 3, 10, 255)
#: Default clock tolerance in seconds: within it, the clock is left alone.
DEFAULT_TOLERANCE = 10.0
#: Counters reserved per command: AARQ, HLS reply, the action or set, three reads, the release, and spare.
COUNTERS_PER_COMMAND = 16

CommandName = Literal["disconnect", "reconnect", "clock-sync"]
COMMANDS: tuple[CommandName, ...] = ("disconnect", "reconnect", "clock-sync")

#: Codes of the event table's ``head-end`` log raised by relay orders.
_ALARM_DISAGREEMENT = 1
_ALARM_NO_READBACK = 2
_REMOTE_DISCONNECT = 1
_REMOTE_RECONNECT = 2
# Control modes in which remote_reconnect only arms the relay (transition d): the customer closes it.
_MANUAL_RECONNECT_MODES = frozenset((ControlMode.MODE_1, ControlMode.MODE_3, ControlMode.MODE_5, ControlMode.MODE_6))


def current_user() -> str:
    """Who the audit trail names for a command started from this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still an audit line
        return "operator"


@dataclass(frozen=True, slots=True)
class RelayState:
    """IC 70 as read back: output_state (supply on), control_state, control_mode."""

    output: bool | None
    control: ControlState | None
    mode: ControlMode | None

    def describe(self) -> str:
        output = "unknown" if self.output is None else ("on" if self.output else "off")
        control = "unknown" if self.control is None else self.control.name.lower()
        mode = "unknown" if self.mode is None else str(int(self.mode))
        return f"control state {control}, output {output}, control mode {mode}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one order; ``values`` holds what was read (relay state, clock deviations)."""

    order_number: str
    serial: str
    command: str
    state: str  # EXE, WARN or FAIL
    observations: str | None = None
    reason: str | None = None
    retryable: bool = False
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        return self.reason or self.observations or str(self.values.get("summary", ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order_number, "meter": self.serial, "command": self.command, "result": self.state,
            "observations": self.observations, "reason": self.reason, "retryable": self.retryable,
            "values": self.values,
        }


def _deviation_seconds(meter_time: datetime, now: datetime) -> float:
    return round((meter_time - now).total_seconds(), 3)


def _signed(seconds: float) -> str:
    return f"{seconds:+.1f} s"


class _Outcome:
    """What a command's body found: observations (a WARN), the values read, an alarm to raise."""

    def __init__(self, observations: list[str]) -> None:
        self.observations = observations
        self.values: dict[str, Any] = {}
        #: A head-end alarm raised by the order (code of the event table's ``head-end`` log, text).
        self.alarm: tuple[int, str] | None = None
        #: The device's clock as last read, and the head-end's time then (a clock sync).
        self.clock: tuple[datetime, datetime] | None = None

    def warn(self, text: str) -> None:
        self.observations.append(text)


Body = Callable[[MeterSession, _Outcome], Awaitable[None]]


class Commands:
    """Runs commands against meters of a registry as orders of the one order runner (``hes.runner``).

    ``now`` is the head-end's time (the clock sync sets meters to it; a simulated field passes its
    own field clock). ``gate`` is the process's gate (the per-DC session budget and the device
    locks), ``runner`` the process's order runner when it has one (then ``timeouts`` and ``gate``
    are its own). A DC known to be down is not contacted unless ``recheck_dc``.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        who: str | None = None,
        timeouts: Timeouts | None = None,
        gate: Gate | None = None,
        now: Callable[[], datetime] = utcnow,
        runner: OrderRunner | None = None,
        recheck_dc: bool = False,
    ) -> None:
        self.registry = registry
        self.who = who or current_user()
        self.now = now
        self.recheck_dc = recheck_dc
        self.runner = runner or OrderRunner(registry, requested_by=self.who, gate=gate, timeouts=timeouts, clock=now)

    # --- the commands ----------------------------------------------------------------------------------

    async def disconnect(self, serial: str) -> CommandResult:
        """Remote disconnection (IC 70 method 1), then the relay state read back."""
        return await self._run(serial, "disconnect", {}, self._relay_body(_REMOTE_DISCONNECT))

    async def reconnect(self, serial: str) -> CommandResult:
        """Remote reconnection (IC 70 method 2), then the relay state read back."""
        return await self._run(serial, "reconnect", {}, self._relay_body(_REMOTE_RECONNECT))

    async def clock_sync(self, serial: str, tolerance: float = DEFAULT_TOLERANCE, *,
                         concentrator: bool = False) -> CommandResult:
        """Read the clock; when off by more than ``tolerance`` seconds, set it to the head-end's time and check.

        ``concentrator``: ``serial`` is a DC's id, and the DC's own clock is synchronised (its management
        logical device; the new deviation is kept as the DC's clock state).
        """
        if not tolerance >= 0:
            raise ValueError(f"tolerance {tolerance} s must be zero or more")
        return await self._run(serial, "clock-sync", {"tolerance": tolerance}, self._clock_body(tolerance),
                               concentrator=concentrator)

    async def run(self, serial: str, command: CommandName, tolerance: float = DEFAULT_TOLERANCE) -> CommandResult:
        if command == "disconnect":
            return await self.disconnect(serial)
        if command == "reconnect":
            return await self.reconnect(serial)
        if command == "clock-sync":
            return await self.clock_sync(serial, tolerance)
        raise ValueError(f"unknown command {command!r} (one of {', '.join(COMMANDS)})")

    # --- bodies ----------------------------------------------------------------------------------------

    def _relay_body(self, method: int) -> Body:
        wanted = ControlState.DISCONNECTED if method == _REMOTE_DISCONNECT else ControlState.CONNECTED
        verb = "disconnect" if method == _REMOTE_DISCONNECT else "reconnect"

        async def body(session: MeterSession, outcome: _Outcome) -> None:
            relay = session.target.device_type.relay
            if relay is None:
                raise ServiceError(f"{session.what}: device type {session.target.device_type.name} has no disconnect "
                                   "control")
            await session.action(70, relay, method, Data.integer(0))
            try:
                state = await _read_relay(session, relay)
            except (ServiceError, DecodeError) as exc:
                outcome.warn(f"{verb} accepted, but the relay state could not be read back: {exc}")
                outcome.alarm = (_ALARM_NO_READBACK, outcome.observations[-1])
                return
            outcome.values.update(
                output_state=state.output, control_state=None if state.control is None else state.control.name.lower(),
                control_mode=None if state.mode is None else int(state.mode), summary=state.describe(),
            )
            if state.control is wanted and state.output is (wanted is ControlState.CONNECTED):
                return
            if (method == _REMOTE_RECONNECT and state.control is ControlState.READY_FOR_RECONNECTION
                    and state.output is False):
                why = (f" (control mode {int(state.mode)})" if state.mode in _MANUAL_RECONNECT_MODES
                       else "")
                outcome.warn(f"relay ready for reconnection{why}: manual reconnection at the meter is needed; "
                             f"{state.describe()}")
                return
            outcome.warn(f"relay not {wanted.name.lower()} after {verb}: {state.describe()}")
            # The supply is not where the order said it would be: the centre must know at once.
            outcome.alarm = (_ALARM_DISAGREEMENT, outcome.observations[-1])

        return body

    def _clock_body(self, tolerance: float) -> Body:
        async def body(session: MeterSession, outcome: _Outcome) -> None:
            before = await self._read_clock(session)
            now = self.now()
            deviation = _deviation_seconds(before.moment, now)
            outcome.values.update(meter_time=before.moment.isoformat(), head_end_time=now.isoformat(),
                                  deviation_seconds=deviation, tolerance_seconds=tolerance,
                                  clock_deviation_minutes=before.deviation)
            outcome.clock = (before.moment, now)
            if abs(deviation) <= tolerance:
                outcome.values.update(set=False, summary=f"clock off by {_signed(deviation)}, within "
                                                         f"{tolerance:g} s: left alone")
                return
            # The meter keeps its own time zone: write our instant at its deviation, clock status ok.
            target = self.now()
            value = CosemDateTime.from_datetime(target, deviation=before.deviation, clock_status=0)
            await session.set(8, session.target.device_type.clock, 2, Data.octet_string(value.encode()))
            after = await self._read_clock(session)
            checked = self.now()
            residual = _deviation_seconds(after.moment, checked)
            outcome.clock = (after.moment, checked)
            outcome.values.update(set=True, residual_seconds=residual,
                                  summary=f"clock was off by {_signed(deviation)}; set, now {_signed(residual)}")
            if abs(residual) > tolerance:
                outcome.warn(f"clock was off by {_signed(deviation)} and is still off by {_signed(residual)} "
                             f"after the set (tolerance {tolerance:g} s)")

        return body

    async def _read_clock(self, session: MeterSession) -> _ClockValue:
        data = await session.get(8, session.target.device_type.clock, 2)
        raw = data.value if data.tag in (DataTag.OCTET_STRING, DataTag.DATE_TIME) else None
        if isinstance(raw, CosemDateTime):
            stamp = raw
        elif isinstance(raw, bytes):
            stamp = CosemDateTime.decode(raw)
        else:
            raise DecodeError(f"{session.what}: clock is a {data.tag.name.lower()}, not a date-time")
        moment = stamp.to_datetime()
        if moment is None or not stamp.deviation_specified:
            raise DecodeError(f"{session.what}: clock {stamp} is not a full instant with a deviation")
        return _ClockValue(moment, stamp.deviation)

    # --- the order around a body ---------------------------------------------------------------------------

    async def _run(self, serial: str, command: CommandName, parameters: dict[str, Any], body: Body, *,
                   concentrator: bool = False) -> CommandResult:
        who = self.who
        described = f"{command} {serial}" + "".join(f" --{k} {v}" for k, v in parameters.items())

        async def session_body(session: MeterSession, observations: Observations) -> _Outcome:
            outcome = _Outcome(observations)
            await body(session, outcome)
            return outcome

        def announce(db: Session, told: Announcement[_Outcome]) -> None:
            # The result, and any alarm it raises, go to the event bus in the order's own transaction.
            outcome = told.result
            values = dict(outcome.values) if outcome is not None else None
            finish = told.finish
            messages = [command_message(finish.order_number, serial, finish.concentrator_id, command, told.state,
                                        told.detail, who, values)]
            if outcome is not None and outcome.alarm is not None and told.state != "FAIL":
                code, text = outcome.alarm
                try:
                    catalog = load_catalog()
                except CatalogError as exc:  # a broken table must not keep the order from finishing
                    logger.error("event table unusable, defaults used: %s", exc)
                    catalog = default_catalog()
                definition = catalog.lookup("head-end", code)
                messages.append(order_alarm_message(definition, finish.order_number, serial, finish.concentrator_id,
                                                    text, who))
                logger.warning("meter %s: %s (order %s): %s", serial, definition.name, finish.order_number, text)
            queue(db.connection(), messages)

        def store(db: Session, finish: Finish, outcome: _Outcome) -> tuple[int, str | None]:
            if concentrator and outcome.clock is not None:
                # The DC's clock as this order left it: what the next contact judges it by.
                record_clock(db.connection(), ClockCheck(serial, *outcome.clock))
            return 0, None

        job: Job[_Outcome] = Job(serial, command, session_body, COUNTERS_PER_COMMAND,
                                 parameters={**parameters, "described": described}, verb="sent",
                                 concentrator=concentrator, force_contact=self.recheck_dc, store=store,
                                 announce=announce, crash_point="command-before-store",
                                 check_dc_clock=not concentrator)
        result = await self.runner.run(job, requested_by=who)
        outcome = result.result
        observations = "; ".join(result.observations) or None
        return CommandResult(result.order_number, serial, command, result.state, observations, result.reason,
                             result.retryable, dict(outcome.values) if outcome is not None else {})


@dataclass(frozen=True, slots=True)
class _ClockValue:
    moment: datetime  # aware, at the meter's own offset
    deviation: int  # COSEM deviation, minutes (UTC = local + deviation)


async def _read_relay(session: MeterSession, relay: ObisCode = DISCONNECT_CONTROL) -> RelayState:
    values = await session.get_many([(70, relay, 2), (70, relay, 3), (70, relay, 4)])
    output, control, mode = values
    if isinstance(output, ServiceError) and isinstance(control, ServiceError):
        raise output

    def enum(value: Data | ServiceError, kind: type[ControlState] | type[ControlMode]) -> Any:
        if isinstance(value, ServiceError) or value.tag != DataTag.ENUM:
            return None
        try:
            return kind(value.value)
        except ValueError:
            return None

    return RelayState(
        output=output.value if not isinstance(output, ServiceError) and output.tag == DataTag.BOOLEAN else None,
        control=enum(control, ControlState),
        mode=enum(mode, ControlMode),
    )
