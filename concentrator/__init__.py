"""The head-end's model of a data concentrator: pure (no database, socket or clock), deterministic.

A data concentrator (DC) stands between the head-end and the meters of one low-voltage network:
it reads them over PLC or RF on its own schedule and keeps what it read (cached, "concentrated"
reads), tunnels the head-end's associations to them (gateway reads), serves a few sessions at a
time, keeps its own clock and a table of its meters. What the head-end knows and decides about a
DC lives here and nowhere else:

| module | what |
|---|---|
| ``budget`` | the one session budget per DC |
| ``slots`` | the books of who holds a DC's session slots and a device's lock, and who waits |
| ``reachability`` | reachable, down, due a recheck: one transition table; contact outcomes; fail-fast |
| ``keys`` | whose invocation counters a session sends and checks; the device to hold alone |
| ``links`` | cached versus tunnelled reads; response deadlines by the link crossed (PLC, RF, IP) |
| ``meter_table`` | the DC's meter table and its reconciliation with the registry |
| ``clock`` | the DC's clock: deviation, tolerance, when to check it again |

Storage lives in ``hes/db/`` (``hes.db.concentrators``); waiting on slots in ``hes.slots``.
"""

from concentrator.budget import DEFAULT_SESSIONS, SessionBudget
from concentrator.clock import ClockCheck, ClockState
from concentrator.keys import CounterKeys, concentrated_keys, logical_device_key, management_keys, meter_keys
from concentrator.links import DEFAULT_DEADLINES, Deadlines, Medium, ReadMode
from concentrator.meter_table import MeterTableEntry, Reconciliation, RegisteredMeter, parse_meter_table, reconcile
from concentrator.reachability import Contact, FailureKind, Reachability, ReachabilityState, contact_outcome
from concentrator.slots import SlotTable

__all__ = [
    "DEFAULT_DEADLINES",
    "DEFAULT_SESSIONS",
    "ClockCheck",
    "ClockState",
    "Contact",
    "CounterKeys",
    "Deadlines",
    "FailureKind",
    "Medium",
    "MeterTableEntry",
    "Reachability",
    "ReachabilityState",
    "ReadMode",
    "Reconciliation",
    "RegisteredMeter",
    "SessionBudget",
    "SlotTable",
    "concentrated_keys",
    "contact_outcome",
    "logical_device_key",
    "management_keys",
    "meter_keys",
    "parse_meter_table",
    "reconcile",
]
