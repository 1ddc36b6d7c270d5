"""COSEM interface-class models: units, every class's attributes both ways, object_list, IC 70 machine."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem import (
    INTERFACE_CLASSES,
    ScalerUnit,
    Unit,
    apply_scaler,
    attribute_from_data,
    attribute_to_data,
    unit_symbol,
)
from protocols.cosem.association import (
    ASSOCIATION_LN,
    AssociatedPartnersId,
    AssociationLnAttribute,
    AssociationLnMethod,
    AssociationStatus,
    AttributeAccessItem,
    AttributeAccessMode,
    ContextName,
    MethodAccessItem,
    ObjectListElement,
    UserEntry,
    XdlmsContextInfo,
)
from protocols.cosem.clock import CLOCK, ClockAttribute, ClockBase, ClockMethod, PresetAdjustingTime
from protocols.cosem.disconnect import (
    DISCONNECT_CONTROL,
    TRANSITIONS,
    ControlMode,
    ControlState,
    DisconnectControlMachine,
    Transition,
    Trigger,
    allowed_transition,
)
from protocols.cosem.profile import (
    PROFILE_GENERIC,
    CaptureObjectDefinition,
    ProfileGenericAttribute,
    SortMethod,
)
from protocols.cosem.register import EXTENDED_REGISTER, REGISTER, RegisterMethod
from protocols.cosem.security_setup import (
    SECURITY_SETUP,
    GlobalKeyId,
    KeyData,
    SecurityPolicy,
    SecuritySetupAttribute,
    SecuritySetupMethod,
    SecuritySuite,
)
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, EncodeError, StateError
from protocols.obis import ObisCode
from tests.vectors.cosem_vectors import ATTRIBUTE_VECTORS

# --- units ----------------------------------------------------------------------------------------


def test_unit_values_follow_the_blue_book_table() -> None:
    expected = {
        "YEAR": 1, "SECOND": 7, "WATT": 27, "VOLT_AMPERE": 28, "VAR": 29, "WATT_HOUR": 30,
        "VOLT_AMPERE_HOUR": 31, "VAR_HOUR": 32, "AMPERE": 33, "VOLT": 35, "HERTZ": 44, "PERCENT": 56,
        "OTHER": 254, "COUNT": 255,
    }  # fmt: skip
    assert {name: int(Unit[name]) for name in expected} == expected
    assert [unit_symbol(u) for u in (27, 28, 29, 30, 31, 32, 33, 35, 44)] == [
        "W", "VA", "var", "Wh", "VAh", "varh", "A", "V", "Hz",
    ]  # fmt: skip
    assert unit_symbol(1) == "a"
    assert unit_symbol(255) == ""
    assert unit_symbol(200) == ""


def test_apply_scaler_is_exact() -> None:
    assert apply_scaler(1234, 0) == 1234
    assert type(apply_scaler(1234, 2)) is int
    assert apply_scaler(1234, 2) == 123400
    assert apply_scaler(1234, -3) == Decimal("1.234")
    assert str(apply_scaler(-5, -2)) == "-0.05"
    # a 64-bit counter with a negative scaler keeps every digit (a float would not)
    assert apply_scaler(2**64 - 1, -3) == Decimal("18446744073709551.615")
    assert str(apply_scaler(10**19 + 7, -1)) == "1000000000000000000.7"


def test_scaler_unit_both_ways_and_bad_shapes() -> None:
    su = ScalerUnit(-2, Unit.VOLT)
    data = su.to_data()
    assert encode_data(data) == bytes.fromhex("02020ffe1623")
    assert ScalerUnit.from_data(data) == su
    assert ScalerUnit.from_data(data).unit is Unit.VOLT
    assert str(su) == "x10^-2 V"
    assert ScalerUnit.from_data(Data.structure([Data.integer(0), Data.enum(99)])) == ScalerUnit(0, 99)
    for bad in (
        Data.null(),
        Data.structure([Data.integer(0)]),
        Data.structure([Data.unsigned(0), Data.enum(30)]),
        Data.structure([Data.integer(0), Data.unsigned(30)]),
        Data.array([Data.integer(0), Data.enum(30)]),
    ):
        with pytest.raises(DecodeError):
            ScalerUnit.from_data(bad)
    with pytest.raises(EncodeError):
        ScalerUnit(200, 30).to_data()


# --- vectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source", "hex_", "expected"), ATTRIBUTE_VECTORS, ids=[v[0] for v in ATTRIBUTE_VECTORS]
)
def test_attribute_vectors(name: str, source: str, hex_: str, expected: tuple[int, int, Any]) -> None:
    raw = bytes.fromhex(hex_)
    class_id, attribute_id, value = expected
    assert source
    parsed = attribute_from_data(class_id, attribute_id, decode_data_exact(raw))
    assert parsed == value
    assert encode_data(attribute_to_data(class_id, attribute_id, value)) == raw
    with pytest.raises(DecodeError):
        decode_data_exact(raw + b"\x00")
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_data_exact(raw[:cut])


# --- every class, every attribute, both ways -----------------------------------------------------

_LN = ObisCode(0, 0, 1, 0, 0, 255)
_T = CosemDateTime(2024, 3, 31, 7, 2, 0, 0, 0, -60, 0)
_T2 = CosemDateTime(0xFFFF, 10, 0xFE, 7, 3, 0, 0, 0, -120, 0x80)
_CAPTURE = CaptureObjectDefinition(3, ObisCode(1, 0, 1, 8, 0, 255), 2, 0)

SAMPLES: list[tuple[int, int, Any]] = [
    (1, 1, ObisCode(0, 0, 96, 1, 0, 255)),
    (1, 2, Data.visible_string("SN12345678")),
    (3, 2, Data.double_long_unsigned(123456)),
    (3, 3, ScalerUnit(0, Unit.WATT_HOUR)),
    (4, 2, Data.long_unsigned(4000)),
    (4, 3, ScalerUnit(1, Unit.WATT)),
    (4, 4, Data(DataTag.BIT_STRING, "00000001")),
    (4, 5, _T),
    (
        7,
        2,
        Data.array([Data.structure([Data.octet_string(_T.encode()), Data.double_long_unsigned(1)])]),
    ),
    (7, 3, (CaptureObjectDefinition(8, _LN, 2, 0), _CAPTURE)),
    (7, 4, 900),
    (7, 5, SortMethod.FIFO),
    (7, 6, _CAPTURE),
    (7, 7, 96),
    (7, 8, 4320),
    (8, 2, _T),
    (8, 3, -60),
    (8, 4, 0),
    (8, 5, _T2),
    (8, 6, _T2),
    (8, 7, 60),
    (8, 8, True),
    (8, 9, ClockBase.MAINS_50_HZ),
    (15, 3, AssociatedPartnersId(1, 1)),
    (15, 4, ContextName((2, 16, 756, 5, 8, 1, 3))),
    (15, 4, ContextName((2, 16, 756, 5, 8, 1, 1), as_octet_string=True)),
    (15, 5, XdlmsContextInfo(0x001E1D, 1024, 1024, 6, 0, b"")),
    (15, 6, ContextName((2, 16, 756, 5, 8, 2, 5))),
    (15, 7, b"\x00" * 16),
    (15, 8, AssociationStatus.ASSOCIATED),
    (15, 9, ObisCode(0, 0, 43, 0, 0, 255)),
    (15, 10, (UserEntry(1, "operator"), UserEntry(2, "reader"))),
    (15, 11, UserEntry(1, "operator")),
    (64, 2, SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.ENCRYPTED_REQUEST),
    (64, 3, SecuritySuite.AES_GCM_128),
    (64, 4, b"MMM\x00\x00\x00\x00\x01"),
    (64, 5, b"ABC\x12\x34\x56\x78\x9a"),
    (64, 6, ()),
    (70, 2, True),
    (70, 3, ControlState.CONNECTED),
    (70, 4, ControlMode.MODE_4),
]


@pytest.mark.parametrize(("class_id", "attribute_id", "value"), SAMPLES)
def test_attribute_round_trip(class_id: int, attribute_id: int, value: Any) -> None:
    encoded = encode_data(attribute_to_data(class_id, attribute_id, value))
    back = attribute_from_data(class_id, attribute_id, decode_data_exact(encoded))
    assert back == value
    assert type(back) is type(value) or isinstance(value, int)


def test_every_attribute_and_method_id_has_a_codec() -> None:
    for ic in INTERFACE_CLASSES.values():
        assert set(ic.attribute_codecs) == {int(a) for a in ic.attributes}, ic.name
        if ic.methods is not None:
            assert set(ic.method_codecs) == {int(m) for m in ic.methods}, ic.name
        assert ic.attributes(1).name == "LOGICAL_NAME"
    assert sorted(INTERFACE_CLASSES) == [1, 3, 4, 7, 8, 15, 64, 70]
    assert (REGISTER.class_id, EXTENDED_REGISTER.class_id, PROFILE_GENERIC.version, CLOCK.class_id) == (
        3,
        4,
        1,
        8,
    )


def test_logical_name_must_be_six_bytes() -> None:
    for ic in INTERFACE_CLASSES.values():
        assert ic.attribute_from_data(1, Data.octet_string(bytes(range(6)))) == ObisCode(0, 1, 2, 3, 4, 5)
        with pytest.raises(DecodeError):
            ic.attribute_from_data(1, Data.octet_string(b"\x01\x02"))
        with pytest.raises(DecodeError):
            ic.attribute_from_data(1, Data.visible_string("0.0.1.0.0.255"))


def test_wrong_shapes_give_decode_error() -> None:
    typed = [(c, a) for c, a, v in SAMPLES if not isinstance(v, Data)]
    for class_id, attribute_id in typed:
        for bad in (Data.null(), Data.structure([]), Data(DataTag.FLOAT64, 1.5)):
            with pytest.raises(DecodeError):
                attribute_from_data(class_id, attribute_id, bad)
    with pytest.raises(DecodeError):
        attribute_from_data(99, 2, Data.null())
    with pytest.raises(DecodeError):
        attribute_from_data(3, 9, Data.null())
    # hand-built Data whose value does not match its tag
    with pytest.raises(DecodeError):
        attribute_from_data(15, 2, Data(DataTag.ARRAY, (1, 2)))
    with pytest.raises(DecodeError):
        attribute_from_data(7, 3, Data(DataTag.ARRAY, "x"))


def _data_strategy() -> st.SearchStrategy[Data]:
    leaves = st.one_of(
        st.just(Data.null()),
        st.booleans().map(Data.boolean),
        st.integers(-128, 127).map(Data.integer),
        st.integers(0, 255).map(Data.unsigned),
        st.integers(0, 255).map(Data.enum),
        st.integers(0, 65535).map(Data.long_unsigned),
        st.integers(-32768, 32767).map(Data.long),
        st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
        st.binary(max_size=14).map(Data.octet_string),
        st.sampled_from([b"\x00\x00\x01\x00\x00\xff", bytes(12), b"\x60\x85\x74\x05\x08\x01\x01"]).map(
            Data.octet_string
        ),
        st.text(st.characters(max_codepoint=255), max_size=4).map(Data.visible_string),
        st.text("01", min_size=0, max_size=30).map(lambda s: Data(DataTag.BIT_STRING, s)),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=7).map(Data.structure), st.lists(inner, max_size=4).map(Data.array)
        ),
        max_leaves=30,
    )


@given(data=_data_strategy())
def test_fuzz_every_attribute_and_method_parser(data: Data) -> None:
    for ic in INTERFACE_CLASSES.values():
        for attribute_id in ic.attribute_codecs:
            try:
                value = ic.attribute_from_data(attribute_id, data)
            except DecodeError:
                continue
            # what parses encodes back to the same bytes
            assert encode_data(ic.attribute_to_data(attribute_id, value)) == encode_data(data)
        for method_id in ic.method_codecs:
            with contextlib.suppress(DecodeError):
                ic.method_from_data(method_id, data)


# --- association LN --------------------------------------------------------------------------------


def _realistic_object_list() -> tuple[ObjectListElement, ...]:
    ro, rw = AttributeAccessMode.READ_ONLY, AttributeAccessMode.READ_AND_WRITE

    def attrs(
        *modes: int, selectors: dict[int, tuple[int, ...]] | None = None
    ) -> tuple[AttributeAccessItem, ...]:
        sel = selectors or {}
        return tuple(AttributeAccessItem(i, m, sel.get(i)) for i, m in enumerate(modes, start=1))

    def methods(*modes: int, boolean: bool = False) -> tuple[MethodAccessItem, ...]:
        return tuple(MethodAccessItem(i, m, boolean) for i, m in enumerate(modes, start=1))

    return (
        ObjectListElement(8, 0, ObisCode(0, 0, 1, 0, 0, 255), attrs(ro, rw, rw, ro, rw, rw, rw, rw, ro),
                          methods(1, 1, 1, 1, 1, 1)),
        ObjectListElement(1, 0, ObisCode(0, 0, 96, 1, 0, 255), attrs(ro, ro)),
        ObjectListElement(3, 0, ObisCode(1, 0, 1, 8, 0, 255), attrs(ro, ro, ro), methods(0)),
        ObjectListElement(3, 0, ObisCode(1, 0, 2, 8, 0, 255), attrs(ro, ro, ro), methods(0)),
        ObjectListElement(4, 0, ObisCode(1, 0, 1, 6, 0, 255), attrs(ro, ro, ro, ro, ro), methods(0)),
        ObjectListElement(7, 1, ObisCode(1, 0, 99, 1, 0, 255), attrs(ro, ro, ro, rw, ro, ro, ro, ro,
                          selectors={2: (1, 2)}), methods(0, 0)),
        ObjectListElement(15, 2, ObisCode(0, 0, 40, 0, 0, 255), attrs(ro, ro, ro, ro, ro, ro, 0, ro, ro),
                          methods(2, 0, 0, 0, 0, 0)),
        ObjectListElement(64, 1, ObisCode(0, 0, 43, 0, 0, 255), attrs(ro, ro, ro, ro, ro),
                          methods(2, 2, boolean=False)),
        ObjectListElement(70, 0, ObisCode(0, 0, 96, 3, 10, 255), attrs(ro, ro, ro, rw),
                          methods(1, 1, boolean=True)),
    )  # fmt: skip


def test_object_list_realistic_round_trip_and_lookup() -> None:
    elements = _realistic_object_list()
    raw = encode_data(attribute_to_data(15, AssociationLnAttribute.OBJECT_LIST, elements))
    parsed = attribute_from_data(15, 2, decode_data_exact(raw))
    assert parsed == elements
    profile = parsed[5]
    assert (profile.class_id, profile.version, str(profile.logical_name)) == (7, 1, "1.0.99.1.0.255")
    buffer_access = profile.attribute(2)
    assert buffer_access is not None
    assert buffer_access.access_selectors == (1, 2)
    assert buffer_access.readable and not buffer_access.writable
    assert profile.attribute(4) is not None and profile.attribute(4).writable
    assert profile.attribute(12) is None
    assert parsed[8].method_access[0].as_boolean is True
    assert [m.access_mode for m in parsed[8].method_access] == [1, 1]
    # the boolean method access encodes back as a boolean
    assert raw.count(b"\x03\x01") == 2


def test_object_list_is_read_by_gurux_too() -> None:
    gurux = pytest.importorskip("gurux_dlms")
    elements = _realistic_object_list()
    raw = encode_data(attribute_to_data(15, 2, elements))
    client = gurux.GXDLMSClient(True)
    objects = client.parseObjects(gurux.GXByteBuffer(raw), False)
    seen = [(int(o.objectType), o.logicalName) for o in objects]
    assert seen == [(e.class_id, str(e.logical_name)) for e in elements]


def test_context_names_both_forms() -> None:
    octets = Data.octet_string(bytes.fromhex("60857405080101"))
    name = ContextName.from_data(octets)
    assert name.arcs == (2, 16, 756, 5, 8, 1, 1)
    assert name.id == 1
    assert str(name) == "2.16.756.5.8.1.1"
    assert name.to_data() == octets
    structure = ContextName((2, 16, 756, 5, 8, 2, 5)).to_data()
    assert encode_data(structure) == bytes.fromhex("0207 1102 1110 1202f4 1105 1108 1102 1105")
    assert ContextName.from_data(structure).id == 5
    for bad in (
        Data.octet_string(b""),
        Data.octet_string(b"\x60\x85"),
        Data.octet_string(b"\x60\x80\x01"),
        Data.structure([Data.unsigned(2)] * 6),
    ):
        with pytest.raises(DecodeError):
            ContextName.from_data(bad)


def test_xdlms_context_info_conformance_bits() -> None:
    info = XdlmsContextInfo(0x00101D, 0x0400, 0x0200, 6, 0, b"")
    data = info.to_data()
    assert data.value[0] == Data(DataTag.BIT_STRING, "000000000001000000011101")
    assert XdlmsContextInfo.from_data(data) == info
    with pytest.raises(DecodeError):
        XdlmsContextInfo.from_data(Data.structure([Data(DataTag.BIT_STRING, "0101"), *data.value[1:]]))


def test_association_methods() -> None:
    challenge = bytes(range(16))
    data = ASSOCIATION_LN.method_to_data(AssociationLnMethod.REPLY_TO_HLS_AUTHENTICATION, challenge)
    assert data == Data.octet_string(challenge)
    assert ASSOCIATION_LN.method_from_data(1, data) == challenge
    element = _realistic_object_list()[2]
    assert ASSOCIATION_LN.method_from_data(AssociationLnMethod.ADD_OBJECT, element.to_data()) == element
    with pytest.raises(DecodeError):
        ASSOCIATION_LN.method_from_data(9, data)


# --- clock, registers, security setup ----------------------------------------------------------------


def test_clock_methods() -> None:
    preset = PresetAdjustingTime(_T, _T, _T2)
    data = CLOCK.method_to_data(ClockMethod.PRESET_ADJUSTING_TIME, preset)
    assert encode_data(data)[:4] == bytes.fromhex("0203090c")
    assert CLOCK.method_from_data(5, decode_data_exact(encode_data(data))) == preset
    assert CLOCK.method_to_data(ClockMethod.SHIFT_TIME, -900) == Data.long(-900)
    with pytest.raises(EncodeError):
        CLOCK.method_to_data(ClockMethod.SHIFT_TIME, 901)
    assert CLOCK.method_from_data(ClockMethod.ADJUST_TO_QUARTER, Data.integer(0)) == 0
    # the date-time type is accepted where an octet-string of 12 bytes is usual
    assert CLOCK.attribute_from_data(ClockAttribute.TIME, Data(DataTag.DATE_TIME, _T)) == _T
    with pytest.raises(DecodeError):
        CLOCK.attribute_from_data(ClockAttribute.TIME, Data.octet_string(bytes(11)))


def test_register_reset_and_profile_attribute_types() -> None:
    assert REGISTER.method_to_data(RegisterMethod.RESET, 0) == Data.integer(0)
    assert PROFILE_GENERIC.attribute_to_data(ProfileGenericAttribute.CAPTURE_PERIOD, 900) == (
        Data.double_long_unsigned(900)
    )
    with pytest.raises(DecodeError):
        PROFILE_GENERIC.attribute_from_data(4, Data.long_unsigned(900))
    assert PROFILE_GENERIC.attribute_from_data(5, Data.enum(9)) == 9  # unknown values stay ints


def test_security_setup_key_transfer_and_policy() -> None:
    keys = (
        KeyData(GlobalKeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, bytes(24)),
        KeyData(GlobalKeyId.AUTHENTICATION_KEY, b"\x01" * 24),
    )
    data = SECURITY_SETUP.method_to_data(SecuritySetupMethod.GLOBAL_KEY_TRANSFER, keys)
    assert encode_data(data)[:6] == bytes.fromhex("0102 0202 1600")
    assert SECURITY_SETUP.method_from_data(2, data) == keys
    policy = SECURITY_SETUP.method_from_data(SecuritySetupMethod.SECURITY_ACTIVATE, Data.enum(0x6C))
    assert policy == SecurityPolicy.AUTHENTICATED_REQUEST | SecurityPolicy.ENCRYPTED_REQUEST | (
        SecurityPolicy.AUTHENTICATED_RESPONSE | SecurityPolicy.ENCRYPTED_RESPONSE
    )
    assert SECURITY_SETUP.attribute_from_data(SecuritySetupAttribute.SECURITY_SUITE, Data.enum(0)) is (
        SecuritySuite.AES_GCM_128
    )


# --- IC 70 ---------------------------------------------------------------------------------------

_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION
# Written from the Blue Book's control_mode list, independently of the module's table:
# mode -> {trigger: {from state: to state}}
_RD, _RR = Trigger.REMOTE_DISCONNECT, Trigger.REMOTE_RECONNECT
_MD, _MR = Trigger.MANUAL_DISCONNECT, Trigger.MANUAL_RECONNECT
_LD, _LR = Trigger.LOCAL_DISCONNECT, Trigger.LOCAL_RECONNECT
_B_C = {_C: _D, _R: _D}
EXPECTED_IC70: dict[int, dict[Trigger, dict[ControlState, ControlState]]] = {
    0: {},
    1: {_RD: _B_C, _RR: {_D: _R}, _MD: {_C: _R}, _MR: {_R: _C}, _LD: {_C: _R}},
    2: {_RD: _B_C, _RR: {_D: _C}, _MD: {_C: _R}, _MR: {_R: _C}, _LD: {_C: _R}},
    3: {_RD: _B_C, _RR: {_D: _R}, _MR: {_R: _C}, _LD: {_C: _R}},
    4: {_RD: _B_C, _RR: {_D: _C}, _MR: {_R: _C}, _LD: {_C: _R}},
    5: {_RD: _B_C, _RR: {_D: _R}, _MD: {_C: _R}, _MR: {_R: _C}, _LD: {_C: _R}, _LR: {_R: _C}},
    6: {_RD: _B_C, _RR: {_D: _R}, _MR: {_R: _C}, _LD: {_C: _R}, _LR: {_R: _C}},
}


@pytest.mark.parametrize("mode", list(ControlMode))
@pytest.mark.parametrize("state", list(ControlState))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_ic70_every_mode_state_trigger(mode: ControlMode, state: ControlState, trigger: Trigger) -> None:
    expected = EXPECTED_IC70[int(mode)].get(trigger, {}).get(state)
    step = allowed_transition(mode, state, trigger)
    assert (step[1] if step else None) == expected
    machine = DisconnectControlMachine(mode, state)
    start = machine.control_state
    if mode is ControlMode.NONE:
        assert start is ControlState.CONNECTED  # mode 0: always connected
    if expected is None or mode is ControlMode.NONE:
        if allowed_transition(mode, start, trigger) is None:
            with pytest.raises(StateError):
                machine.handle(trigger)
            assert machine.control_state is start
        return
    letter = machine.handle(trigger)
    assert machine.control_state is expected
    assert machine.output_state is (expected is ControlState.CONNECTED)
    assert isinstance(letter, Transition)


def test_ic70_table_letters_and_methods() -> None:
    assert TRANSITIONS[(ControlMode.MODE_2, _D, _RR)] == (Transition.A, _C)
    assert TRANSITIONS[(ControlMode.MODE_1, _D, _RR)] == (Transition.D, _R)
    assert TRANSITIONS[(ControlMode.MODE_1, _C, _RD)] == (Transition.B, _D)
    assert TRANSITIONS[(ControlMode.MODE_5, _R, _LR)] == (Transition.H, _C)
    assert len(TRANSITIONS) == sum(len(v) for m in EXPECTED_IC70.values() for v in m.values())
    machine = DisconnectControlMachine(ControlMode.MODE_1)
    assert machine.output_state is True
    assert machine.invoke(1) is Transition.B
    assert (machine.control_state, machine.output_state) == (_D, False)
    assert machine.invoke(2) is Transition.D
    assert machine.control_state is _R
    assert machine.handle(Trigger.MANUAL_RECONNECT) is Transition.E
    assert machine.control_state is _C
    with pytest.raises(StateError):
        machine.invoke(2)
    with pytest.raises(StateError):
        machine.invoke(3)
    assert DISCONNECT_CONTROL.method_from_data(1, Data.integer(0)) == 0
    assert DISCONNECT_CONTROL.attribute_from_data(3, Data.enum(2)) is ControlState.READY_FOR_RECONNECTION
