"""IC 70 Disconnect control (Blue Book 4.5.8): the relay's attributes and its state machine."""

from __future__ import annotations

from enum import Enum, IntEnum

from protocols.axdr import DataTag
from protocols.cosem._base import InterfaceClass, bool_codec, enum_codec, int_codec, logical_name_codec
from protocols.errors import StateError

__all__ = [
    "DISCONNECT_CONTROL",
    "TRANSITIONS",
    "ControlMode",
    "ControlState",
    "DisconnectControlAttribute",
    "DisconnectControlMethod",
    "DisconnectControlMachine",
    "Transition",
    "Trigger",
    "allowed_transition",
]


class DisconnectControlAttribute(IntEnum):
    LOGICAL_NAME = 1
    OUTPUT_STATE = 2
    CONTROL_STATE = 3
    CONTROL_MODE = 4


class DisconnectControlMethod(IntEnum):
    REMOTE_DISCONNECT = 1
    REMOTE_RECONNECT = 2


class ControlState(IntEnum):
    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


class ControlMode(IntEnum):
    """Which triggers may move the relay (Blue Book IC 70 control_mode 0..6)."""

    NONE = 0
    MODE_1 = 1
    MODE_2 = 2
    MODE_3 = 3
    MODE_4 = 4
    MODE_5 = 5
    MODE_6 = 6


class Trigger(Enum):
    """What can ask the relay to move: the two methods, the customer's button, the meter itself."""

    REMOTE_DISCONNECT = "remote_disconnect"
    REMOTE_RECONNECT = "remote_reconnect"
    MANUAL_DISCONNECT = "manual_disconnect"
    MANUAL_RECONNECT = "manual_reconnect"
    LOCAL_DISCONNECT = "local_disconnect"
    LOCAL_RECONNECT = "local_reconnect"


class Transition(Enum):
    """The transitions of the Blue Book's IC 70 state diagram, named by their letters."""

    A = "a"  # remote_reconnect: disconnected -> connected
    B = "b"  # remote_disconnect: connected -> disconnected
    C = "c"  # remote_disconnect: ready_for_reconnection -> disconnected
    D = "d"  # remote_reconnect: disconnected -> ready_for_reconnection
    E = "e"  # manual_reconnect: ready_for_reconnection -> connected
    F = "f"  # manual_disconnect: connected -> ready_for_reconnection
    G = "g"  # local_disconnect: connected -> ready_for_reconnection
    H = "h"  # local_reconnect: ready_for_reconnection -> connected


_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION

#: (trigger, from state, to state) of each transition letter.
_EDGES: dict[Transition, tuple[Trigger, ControlState, ControlState]] = {
    Transition.A: (Trigger.REMOTE_RECONNECT, _D, _C),
    Transition.B: (Trigger.REMOTE_DISCONNECT, _C, _D),
    Transition.C: (Trigger.REMOTE_DISCONNECT, _R, _D),
    Transition.D: (Trigger.REMOTE_RECONNECT, _D, _R),
    Transition.E: (Trigger.MANUAL_RECONNECT, _R, _C),
    Transition.F: (Trigger.MANUAL_DISCONNECT, _C, _R),
    Transition.G: (Trigger.LOCAL_DISCONNECT, _C, _R),
    Transition.H: (Trigger.LOCAL_RECONNECT, _R, _C),
}

_T = Transition
#: The transitions each control mode enables (Blue Book IC 70, control_mode).
_MODE_TRANSITIONS: dict[ControlMode, frozenset[Transition]] = {
    ControlMode.NONE: frozenset(),
    ControlMode.MODE_1: frozenset({_T.B, _T.C, _T.F, _T.G, _T.D, _T.E}),
    ControlMode.MODE_2: frozenset({_T.B, _T.C, _T.F, _T.G, _T.A, _T.E}),
    ControlMode.MODE_3: frozenset({_T.B, _T.C, _T.G, _T.D, _T.E}),
    ControlMode.MODE_4: frozenset({_T.B, _T.C, _T.G, _T.A, _T.E}),
    ControlMode.MODE_5: frozenset({_T.B, _T.C, _T.F, _T.G, _T.D, _T.E, _T.H}),
    ControlMode.MODE_6: frozenset({_T.B, _T.C, _T.G, _T.D, _T.E, _T.H}),
}

#: THE table of the machine: (control_mode, control_state, trigger) -> (transition, new state).
#: Any key not here is not allowed in that mode and state.
TRANSITIONS: dict[tuple[ControlMode, ControlState, Trigger], tuple[Transition, ControlState]] = {
    (mode, source, trigger): (letter, target)
    for mode, letters in _MODE_TRANSITIONS.items()
    for letter, (trigger, source, target) in _EDGES.items()
    if letter in letters
}


def allowed_transition(
    mode: ControlMode, state: ControlState, trigger: Trigger
) -> tuple[Transition, ControlState] | None:
    """The transition a trigger makes in this mode and state, or None if it is not allowed."""
    return TRANSITIONS.get((mode, state, trigger))


_METHOD_TRIGGERS = {
    DisconnectControlMethod.REMOTE_DISCONNECT: Trigger.REMOTE_DISCONNECT,
    DisconnectControlMethod.REMOTE_RECONNECT: Trigger.REMOTE_RECONNECT,
}


class DisconnectControlMachine:
    """The relay of one meter in the server role (sans-IO): triggers in, new state out.

    ``output_state`` follows ``control_state``: the supply is on only when connected. With
    control mode 0 the object stays connected, as the Blue Book says.
    """

    def __init__(
        self, control_mode: ControlMode = ControlMode.MODE_1, control_state: ControlState = _C
    ) -> None:
        self.control_mode = ControlMode(control_mode)
        self.control_state = ControlState(_C if self.control_mode is ControlMode.NONE else control_state)

    @property
    def output_state(self) -> bool:
        return self.control_state is ControlState.CONNECTED

    def handle(self, trigger: Trigger) -> Transition:
        """Apply a trigger; ``StateError`` (state unchanged) when this mode and state do not allow it."""
        step = TRANSITIONS.get((self.control_mode, self.control_state, trigger))
        if step is None:
            raise StateError(
                f"{trigger.value} not allowed in state {self.control_state.name.lower()} "
                f"with control mode {int(self.control_mode)}"
            )
        letter, self.control_state = step
        return letter

    def invoke(self, method_id: int) -> Transition:
        """Run method 1 (remote_disconnect) or 2 (remote_reconnect)."""
        try:
            trigger = _METHOD_TRIGGERS[DisconnectControlMethod(method_id)]
        except ValueError:
            raise StateError(f"disconnect control has no method {method_id}") from None
        return self.handle(trigger)


DISCONNECT_CONTROL = InterfaceClass(
    class_id=70,
    version=0,
    name="Disconnect control",
    attributes=DisconnectControlAttribute,
    methods=DisconnectControlMethod,
    attribute_codecs={
        DisconnectControlAttribute.LOGICAL_NAME: logical_name_codec,
        DisconnectControlAttribute.OUTPUT_STATE: bool_codec("output_state"),
        DisconnectControlAttribute.CONTROL_STATE: enum_codec(ControlState, "control_state"),
        DisconnectControlAttribute.CONTROL_MODE: enum_codec(ControlMode, "control_mode"),
    },
    method_codecs={
        DisconnectControlMethod.REMOTE_DISCONNECT: int_codec(DataTag.INTEGER, "remote_disconnect data"),
        DisconnectControlMethod.REMOTE_RECONNECT: int_codec(DataTag.INTEGER, "remote_reconnect data"),
    },
)
