"""Tests of the xDLMS service APDUs: vectors both ways, round trips, fuzzing, block transfer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocols.axdr as axdr_module
from protocols.axdr import Data, DataTag, encode_data
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, EncodeError, ServiceError, StateError
from protocols.obis import ObisCode
from protocols.xdlms import action, errors, gateway, gbt, get, notification
from protocols.xdlms import set as set_
from protocols.xdlms.apdu import decode_xdlms_apdu
from protocols.xdlms.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
    Priority,
    SelectiveAccessDescriptor,
    ServiceClass,
    service_error_for,
)
from protocols.xdlms.selective_access import (
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    access_selection_from,
)
from tests.vectors.xdlms_vectors import VECTORS

ALL_DECODERS = [
    decode_xdlms_apdu,
    get.decode_get_request,
    get.decode_get_response,
    set_.decode_set_request,
    set_.decode_set_response,
    action.decode_action_request,
    action.decode_action_response,
    errors.decode_exception_response,
    errors.decode_confirmed_service_error,
    gbt.decode_general_block_transfer,
    notification.decode_data_notification,
    notification.decode_event_notification_request,
    gateway.decode_gateway_request,
    gateway.decode_gateway_response,
]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _deferred(apdu: Any) -> None:
    """Decode what an APDU keeps encoded (its data, or a gateway's carried APDU)."""
    if isinstance(apdu, get.GetResponseNormal | get.GetResponseWithList):
        if isinstance(apdu, get.GetResponseNormal):
            if not isinstance(apdu.result, DataAccessResult):
                apdu.value()
        else:
            apdu.values()
    elif isinstance(apdu, notification.DataNotification | notification.EventNotificationRequest):
        apdu.value()
    elif isinstance(apdu, set_.SetRequestNormal):
        apdu.data()
    elif isinstance(apdu, action.ActionRequestNormal):
        apdu.parameters_value()
    elif isinstance(apdu, action.ActionResponseNormal):
        if apdu.response.result == ActionResult.SUCCESS and isinstance(
            apdu.response.return_parameters, bytes
        ):
            apdu.response.value()
    elif isinstance(apdu, gateway.GatewayRequest | gateway.GatewayResponse):
        _deferred(decode_xdlms_apdu(apdu.apdu))


# --- vectors -----------------------------------------------------------------------------------

VECTOR_IDS = [v[0] for v in VECTORS]


@pytest.mark.parametrize(("name", "source", "hex_", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vector_decodes(name: str, source: str, hex_: str, expected: Any) -> None:
    raw = _hex(hex_)
    assert source
    assert decode_xdlms_apdu(raw) == expected
    assert type(expected).decode(raw) == expected
    _deferred(expected)  # the kept data is itself well formed


@pytest.mark.parametrize(("name", "source", "hex_", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vector_encodes(name: str, source: str, hex_: str, expected: Any) -> None:
    assert expected.encode() == _hex(hex_)


@pytest.mark.parametrize(("name", "source", "hex_", "expected"), VECTORS, ids=VECTOR_IDS)
@pytest.mark.parametrize("junk", [b"\x00", b"\xff\x01", b"\x09\x00"])
def test_vector_with_trailing_junk_is_rejected(
    name: str, source: str, hex_: str, expected: Any, junk: bytes
) -> None:
    raw = _hex(hex_) + junk
    try:
        apdu = decode_xdlms_apdu(raw)
    except DecodeError:
        return
    # Only data split off lazily (a container ending the APDU, a gateway's payload) can hide
    # the junk; decoding that data must then refuse it.
    assert apdu != expected
    with pytest.raises(DecodeError):
        _deferred(apdu)


@pytest.mark.parametrize(("name", "source", "hex_", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vector_every_truncation_is_refused(name: str, source: str, hex_: str, expected: Any) -> None:
    raw = _hex(hex_)
    for cut in range(len(raw)):
        try:
            apdu = decode_xdlms_apdu(raw[:cut])
        except DecodeError:
            continue
        if _lenient_action_response(apdu, cut):
            continue
        assert apdu != expected
        with pytest.raises(DecodeError):
            _deferred(apdu)


def _lenient_action_response(apdu: object, cut: int) -> bool:
    """C7 01 iip result, cut right after the result, is read as "no data" on purpose (meters send it)."""
    return cut == 4 and isinstance(apdu, action.ActionResponseNormal) and apdu.response.return_parameters is None


def test_action_response_without_the_presence_flag_reads_as_no_data() -> None:
    apdu = decode_xdlms_apdu(bytes.fromhex("C701C100"))
    assert isinstance(apdu, action.ActionResponseNormal)
    assert apdu.response.result is ActionResult.SUCCESS and apdu.response.return_parameters is None
    with pytest.raises(DecodeError):
        decode_xdlms_apdu(bytes.fromhex("C701C1"))


def test_vector_with_wrong_class_decode_is_refused() -> None:
    raw = _hex("C002C100000001")
    with pytest.raises(DecodeError):
        get.GetRequestNormal.decode(raw)
    with pytest.raises(DecodeError):
        set_.SetRequestNormal.decode(raw)


# --- cross-checks against dlms_cosem (test-only peer) -----------------------------------------


def test_dlms_cosem_reads_our_clock_get_request() -> None:
    from dlms_cosem.protocol.xdlms import GetRequestNormal as PeerGetRequestNormal

    ours = get.GetRequestNormal(
        InvokeIdAndPriority(1), CosemAttributeDescriptor(8, ObisCode.parse("0.0.1.0.0.255"), 2)
    )
    peer = PeerGetRequestNormal.from_bytes(ours.encode())
    assert int(peer.cosem_attribute.interface) == 8
    assert (peer.cosem_attribute.instance.c, peer.cosem_attribute.attribute) == (1, 2)
    assert peer.invoke_id_and_priority.invoke_id == 1
    assert peer.to_bytes() == ours.encode()


def test_dlms_cosem_reads_our_disconnect_action() -> None:
    from dlms_cosem.protocol.xdlms.action import ActionRequestNormal as PeerActionRequestNormal

    ours = action.ActionRequestNormal(
        InvokeIdAndPriority(1),
        CosemMethodDescriptor(70, ObisCode(0, 0, 96, 3, 0, 255), 1),
        encode_data(Data.integer(0)),
    )
    peer = PeerActionRequestNormal.from_bytes(ours.encode())
    assert int(peer.cosem_method.interface) == 70
    assert peer.cosem_method.method == 1
    assert bytes(peer.data) == b"\x0f\x00"


def test_dlms_cosem_reads_our_exception_response_and_confirmed_service_error() -> None:
    from dlms_cosem.protocol.xdlms.confirmed_service_error import (
        ConfirmedServiceError as PeerConfirmedServiceError,
    )
    from dlms_cosem.protocol.xdlms.exception_response import ExceptionResponse as PeerExceptionResponse

    ours = errors.ExceptionResponse(
        errors.ExceptionStateError.SERVICE_NOT_ALLOWED,
        errors.ExceptionServiceError.INVOCATION_COUNTER_ERROR,
        42,
    )
    peer = PeerExceptionResponse.from_bytes(ours.encode())
    assert (int(peer.state_error), int(peer.service_error), peer.invocation_counter_data) == (1, 6, 42)
    cse = errors.ConfirmedServiceError(
        errors.ConfirmedServiceErrorChoice.INITIATE_ERROR, errors.ServiceErrorChoice.INITIATE, 1
    )
    peer_cse = PeerConfirmedServiceError.from_bytes(cse.encode())
    assert type(peer_cse.error).__name__ == "InitiateError"
    assert int(peer_cse.error) == 1
    assert cse.detail is errors.InitiateError.DLMS_VERSION_TOO_LOW


def test_dlms_cosem_reads_our_data_notification_and_array_response() -> None:
    from dlms_cosem.protocol.xdlms import DataNotification as PeerDataNotification
    from dlms_cosem.protocol.xdlms.get import GetResponseFactory

    ours = notification.DataNotification(
        LongInvokeIdAndPriority(5, service_class=ServiceClass.CONFIRMED),
        CosemDateTime(2021, 1, 24, 5, 12, 30, 0, 0, -120, 0),
        encode_data(Data.double_long_unsigned(1234)),
    )
    peer = PeerDataNotification.from_bytes(ours.encode())
    assert peer.long_invoke_id_and_priority.long_invoke_id == 5
    assert peer.long_invoke_id_and_priority.confirmed is True
    assert (peer.date_time.year, peer.date_time.day, peer.date_time.hour) == (2021, 24, 12)
    assert peer.body == b"\x06\x00\x00\x04\xd2"
    body = encode_data(Data.array([Data.structure([Data.long_unsigned(1), Data.unsigned(0)])]))
    response = get.GetResponseNormal(InvokeIdAndPriority(1), body)
    assert bytes(GetResponseFactory.from_bytes(response.encode()).data) == body


# --- results and errors ------------------------------------------------------------------------


def test_service_error_for_results() -> None:
    assert service_error_for(DataAccessResult.SUCCESS) is None
    assert service_error_for(ActionResult.SUCCESS) is None
    temporary = service_error_for(DataAccessResult.TEMPORARY_FAILURE)
    assert isinstance(temporary, ServiceError)
    assert (temporary.code, temporary.retryable) == (2, True)
    denied = service_error_for(ActionResult.READ_WRITE_DENIED)
    assert denied is not None
    assert (denied.code, denied.retryable) == (3, False)
    assert "read-write-denied" in str(denied)
    other = service_error_for(DataAccessResult.OTHER_REASON)
    assert other is not None and other.code == 250


def test_get_response_error_raises_service_error() -> None:
    response = get.GetResponseNormal.decode(_hex("C401C10102"))
    with pytest.raises(ServiceError) as caught:
        response.value()
    assert caught.value.retryable is True
    with pytest.raises(ServiceError):
        _ = response.data
    ok = get.GetResponseNormal.decode(_hex("C401C1000600001391"))
    assert ok.data == _hex("0600001391")
    assert ok.value() == Data(DataTag.DOUBLE_LONG_UNSIGNED, 5009)


def test_exception_response_to_error_and_consistency() -> None:
    counter = errors.ExceptionResponse.decode(_hex("D801060000002A"))
    assert counter.invocation_counter == 42
    assert counter.to_error().retryable is True
    assert "42" in str(counter.to_error())
    with pytest.raises(EncodeError):
        errors.ExceptionResponse(
            errors.ExceptionStateError.SERVICE_NOT_ALLOWED, errors.ExceptionServiceError.OTHER_REASON, 5
        ).encode()
    with pytest.raises(DecodeError):
        errors.ExceptionResponse.decode(_hex("D80106000000"))


def test_invoke_id_and_priority_bits() -> None:
    assert InvokeIdAndPriority(1, ServiceClass.CONFIRMED, Priority.HIGH).to_byte() == 0xC1
    assert InvokeIdAndPriority(5, ServiceClass.UNCONFIRMED, Priority.NORMAL).to_byte() == 0x05
    assert InvokeIdAndPriority.from_byte(0x81) == InvokeIdAndPriority(
        1, ServiceClass.UNCONFIRMED, Priority.HIGH
    )
    with pytest.raises(EncodeError):
        InvokeIdAndPriority(16).to_byte()
    long = LongInvokeIdAndPriority(0xABCDEF, True, True, ServiceClass.CONFIRMED, Priority.HIGH)
    assert long.to_int() == 0xF0ABCDEF
    assert LongInvokeIdAndPriority.from_int(0xF0ABCDEF) == long


# --- selective access --------------------------------------------------------------------------


def test_range_descriptor_from_vector_and_back() -> None:
    raw = _hex(
        "C001C1 0007 0100630100FF 02 01 01 0204 0204 120008 09060000010000FF 0F02 120000"
        "090C07E10A010700000000FFC480 090C07E10A010701000000FFC480 0100"
    )
    request = get.GetRequestNormal.decode(raw)
    assert request.access_selection is not None
    descriptor = access_selection_from(request.access_selection)
    assert isinstance(descriptor, RangeDescriptor)
    assert descriptor.restricting_object == CaptureObjectDefinition(8, ObisCode(0, 0, 1, 0, 0, 255), 2, 0)
    assert descriptor.from_value.value[:5] == _hex("07E10A0107")
    assert descriptor.selected_values == ()
    assert descriptor.to_access_selection() == request.access_selection


def test_entry_descriptor_round_trip() -> None:
    entry = EntryDescriptor(1, 10, 1, 0)
    selection = entry.to_access_selection()
    assert selection.access_selector == 2
    assert selection.access_parameters == _hex("0204 0600000001 060000000A 120001 120000")
    assert access_selection_from(selection) == entry
    with pytest.raises(DecodeError):
        access_selection_from(SelectiveAccessDescriptor(3, _hex("1200")))
    with pytest.raises(DecodeError):
        EntryDescriptor.from_data(Data.structure([Data.unsigned(1)]))


# --- hypothesis round trips --------------------------------------------------------------------

leaf_data = st.one_of(
    st.integers(0, 0xFFFFFFFF).map(Data.double_long_unsigned),
    st.integers(0, 0xFF).map(Data.unsigned),
    st.integers(-128, 127).map(Data.integer),
    st.binary(max_size=20).map(Data.octet_string),
    st.booleans().map(Data.boolean),
    st.just(Data.null()),
)
any_data = st.recursive(
    leaf_data,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(Data.structure), st.lists(children, max_size=4).map(Data.array)
    ),
    max_leaves=12,
)
encoded = any_data.map(encode_data)
iips = st.builds(
    InvokeIdAndPriority, st.integers(0, 15), st.sampled_from(ServiceClass), st.sampled_from(Priority)
)
obis = st.builds(ObisCode, *[st.integers(0, 255)] * 6)
attribute = st.builds(CosemAttributeDescriptor, st.integers(0, 0xFFFF), obis, st.integers(-128, 127))
method = st.builds(CosemMethodDescriptor, st.integers(0, 0xFFFF), obis, st.integers(-128, 127))
selection = st.none() | st.builds(SelectiveAccessDescriptor, st.integers(0, 255), encoded)
with_selection = st.builds(CosemAttributeDescriptorWithSelection, attribute, selection)
u32 = st.integers(0, 0xFFFFFFFF)
block = st.builds(DataBlockSA, st.booleans(), u32, st.binary(max_size=40))
access_results = st.sampled_from(DataAccessResult)
get_result = encoded | access_results
date_times = st.none() | st.builds(
    CosemDateTime,
    st.integers(0, 0xFFFF),
    *[st.integers(0, 255)] * 7,
    st.integers(-0x8000, 0x7FFF),
    st.integers(0, 255),
)
action_responses = st.builds(
    action.ActionResponseWithOptionalData, st.sampled_from(ActionResult), st.none() | get_result
)

APDUS = st.one_of(
    st.builds(get.GetRequestNormal, iips, attribute, selection),
    st.builds(get.GetRequestNext, iips, u32),
    st.builds(get.GetRequestWithList, iips, st.lists(with_selection, max_size=4).map(tuple)),
    st.builds(get.GetResponseNormal, iips, get_result),
    st.builds(
        get.GetResponseWithDatablock, iips, st.booleans(), u32, st.binary(max_size=40) | access_results
    ),
    st.builds(get.GetResponseWithList, iips, st.lists(get_result, max_size=4).map(tuple)),
    st.builds(set_.SetRequestNormal, iips, attribute, encoded, selection),
    st.builds(set_.SetRequestWithFirstDatablock, iips, attribute, block, selection),
    st.builds(set_.SetRequestWithDatablock, iips, block),
    st.builds(
        set_.SetRequestWithList,
        iips,
        st.lists(with_selection, max_size=4).map(tuple),
        st.lists(encoded, max_size=4).map(tuple),
    ),
    st.builds(
        set_.SetRequestWithListAndFirstDatablock, iips, st.lists(with_selection, max_size=4).map(tuple), block
    ),
    st.builds(set_.SetResponseNormal, iips, access_results),
    st.builds(set_.SetResponseDatablock, iips, u32),
    st.builds(set_.SetResponseLastDatablock, iips, access_results, u32),
    st.builds(
        set_.SetResponseLastDatablockWithList, iips, st.lists(access_results, max_size=4).map(tuple), u32
    ),
    st.builds(set_.SetResponseWithList, iips, st.lists(access_results, max_size=4).map(tuple)),
    st.builds(action.ActionRequestNormal, iips, method, st.none() | encoded),
    st.builds(action.ActionRequestNextPblock, iips, u32),
    st.builds(
        action.ActionRequestWithList,
        iips,
        st.lists(method, max_size=4).map(tuple),
        st.lists(encoded, max_size=4).map(tuple),
    ),
    st.builds(action.ActionRequestWithFirstPblock, iips, method, block),
    st.builds(
        action.ActionRequestWithListAndFirstPblock, iips, st.lists(method, max_size=4).map(tuple), block
    ),
    st.builds(action.ActionRequestWithPblock, iips, block),
    st.builds(action.ActionResponseNormal, iips, action_responses),
    st.builds(action.ActionResponseWithPblock, iips, block),
    st.builds(action.ActionResponseWithList, iips, st.lists(action_responses, max_size=4).map(tuple)),
    st.builds(action.ActionResponseNextPblock, iips, u32),
    st.builds(
        errors.ExceptionResponse,
        st.sampled_from(errors.ExceptionStateError),
        st.sampled_from([e for e in errors.ExceptionServiceError if e != 6]),
    ),
    st.builds(
        errors.ExceptionResponse,
        st.sampled_from(errors.ExceptionStateError),
        st.just(errors.ExceptionServiceError.INVOCATION_COUNTER_ERROR),
        u32,
    ),
    st.builds(
        errors.ConfirmedServiceError,
        st.sampled_from(errors.ConfirmedServiceErrorChoice),
        st.sampled_from(errors.ServiceErrorChoice),
        st.integers(0, 255),
    ),
    st.builds(
        gbt.GeneralBlockTransfer,
        st.booleans(),
        st.booleans(),
        st.integers(0, 63),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.binary(max_size=300),
    ),
    st.builds(
        notification.DataNotification,
        st.builds(
            LongInvokeIdAndPriority,
            st.integers(0, 0xFFFFFF),
            st.booleans(),
            st.booleans(),
            st.sampled_from(ServiceClass),
            st.sampled_from(Priority),
        ),
        date_times,
        encoded,
    ),
    st.builds(notification.EventNotificationRequest, attribute, encoded, date_times),
    st.builds(gateway.GatewayRequest, st.integers(0, 255), st.binary(max_size=20), st.binary(max_size=30)),
    st.builds(gateway.GatewayResponse, st.integers(0, 255), st.binary(max_size=20), st.binary(max_size=30)),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(APDUS)
def test_round_trip_every_apdu(apdu: Any) -> None:
    raw = apdu.encode()
    assert decode_xdlms_apdu(raw) == apdu
    assert type(apdu).decode(raw) == apdu


# --- fuzzing -----------------------------------------------------------------------------------


def _only_decode_errors(raw: bytes) -> None:
    for decode in ALL_DECODERS:
        try:
            apdu = decode(raw)
        except DecodeError:
            continue
        try:
            _deferred(apdu)
        except (DecodeError, ServiceError):
            continue
        # Whatever decodes cleanly encodes again to bytes that decode to the same APDU.
        assert decode(apdu.encode()) == apdu


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(raw: bytes) -> None:
    _only_decode_errors(raw)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(VECTORS), st.data())
def test_fuzz_mutated_vectors(vector: tuple[str, str, str, Any], data: st.DataObject) -> None:
    raw = bytearray(_hex(vector[2]))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete" and raw:
            del raw[at]
        else:
            del raw[at:]
    _only_decode_errors(bytes(raw))


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\xc0", b"\xc4\x09\xc1", b"\x60\x00", b"\xdb\x08"])
def test_unknown_or_empty_is_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_xdlms_apdu(raw)


def test_non_bytes_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_xdlms_apdu("C0")  # type: ignore[arg-type]


def test_huge_list_count_is_refused_without_allocating() -> None:
    with pytest.raises(DecodeError):
        decode_xdlms_apdu(_hex("C003C1 84 7FFFFFFF 0001"))


# --- encoding refuses bad values ---------------------------------------------------------------


def test_encode_refuses_out_of_range_values() -> None:
    iip = InvokeIdAndPriority(1)
    with pytest.raises(EncodeError):
        get.GetRequestNext(iip, 1 << 32).encode()
    with pytest.raises(EncodeError):
        get.GetRequestNormal(iip, CosemAttributeDescriptor(70000, ObisCode(0, 0, 1, 0, 0, 255), 2)).encode()
    with pytest.raises(EncodeError):
        set_.SetRequestNormal(
            iip, CosemAttributeDescriptor(8, ObisCode(0, 0, 1, 0, 0, 255), 2), b"\x11"
        ).encode()
    with pytest.raises(EncodeError):
        gbt.GeneralBlockTransfer(False, False, 64, 1, 0, b"").encode()


# --- general block transfer --------------------------------------------------------------------


def test_split_into_blocks_marks_windows_and_last_block() -> None:
    blocks = gbt.split_into_blocks(bytes(range(10)), 3, window=2, receive_window=4, first_block_number=7)
    assert [b.block_number for b in blocks] == [7, 8, 9, 10]
    assert [b.streaming for b in blocks] == [True, False, True, False]
    assert [b.last_block for b in blocks] == [False, False, False, True]
    assert {b.window for b in blocks} == {4}
    assert b"".join(b.block_data for b in blocks) == bytes(range(10))
    assert gbt.split_into_blocks(b"", 5)[0] == gbt.GeneralBlockTransfer(True, False, 1, 1, 0, b"")
    with pytest.raises(EncodeError):
        gbt.split_into_blocks(b"abc", 0)


@pytest.mark.parametrize("window", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [1, 7, 64])
def test_gbt_sender_and_receiver_agree(window: int, size: int) -> None:
    apdu = bytes((i * 7) & 0xFF for i in range(200))
    sender = gbt.GbtSender(apdu, size, window=window)
    receiver = gbt.GbtReceiver(window)
    acks_seen = 0
    while not receiver.complete:
        out = sender.next_window()
        assert 1 <= len(out) <= window
        for block in out:
            # every block goes over the wire as bytes
            for ack in receiver.receive(gbt.GeneralBlockTransfer.decode(block.encode())):
                acks_seen += 1
                sender.receive_ack(gbt.GeneralBlockTransfer.decode(ack.encode()))
    assert receiver.apdu() == apdu
    assert sender.finished
    blocks = -(-len(apdu) // size)
    assert acks_seen == (blocks - 1) // window
    with pytest.raises(StateError):
        receiver.receive(gbt.GeneralBlockTransfer(True, False, 1, 99, 0, b""))


def test_gbt_lost_block_is_sent_again() -> None:
    apdu = bytes(range(40))
    sender = gbt.GbtSender(apdu, 10, window=3)
    receiver = gbt.GbtReceiver(3)
    first = sender.next_window()
    assert [b.block_number for b in first] == [1, 2, 3]
    assert receiver.receive(first[0]) == []
    # block 2 is lost; block 3 ends the window, so the receiver acknowledges block 1 only
    (ack,) = receiver.receive(first[2])
    assert (ack.block_number_ack, ack.window, ack.last_block, ack.block_data) == (1, 3, True, b"")
    sender.receive_ack(ack)
    again = sender.next_window()
    assert [b.block_number for b in again] == [2, 3, 4]
    assert [b.streaming for b in again] == [True, True, False]
    acks = [a for b in again for a in receiver.receive(b)]
    assert acks == []
    assert receiver.complete
    assert receiver.apdu() == apdu


def test_gbt_ack_beyond_what_was_sent_is_state_error() -> None:
    sender = gbt.GbtSender(bytes(30), 10, window=1)
    sender.next_window()
    with pytest.raises(StateError):
        sender.receive_ack(gbt.GeneralBlockTransfer(True, False, 1, 1, 3, b""))
    receiver = gbt.GbtReceiver(1)
    with pytest.raises(StateError):
        receiver.apdu()


# --- performance -------------------------------------------------------------------------------


def test_large_get_response_normal_is_split_off_without_walking_its_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The data of a GetResponseNormal runs to the APDU's end, so decoding the APDU never walks it."""
    row = encode_data(
        Data.structure([Data.octet_string(bytes(12)), Data.unsigned(0), Data.double_long_unsigned(1)])
    )
    body = encode_data(Data.array([Data.null()] * 0)).replace(b"\x01\x00", b"\x01\x81\x78") + row * 120
    raw = _hex("C401C100") + body
    assert len(raw) > 2500

    def walked(*_args: object) -> None:
        raise AssertionError("the data was walked while splitting the APDU")

    with monkeypatch.context() as patch:
        patch.setattr(axdr_module, "skip_data", walked)
        patch.setattr(axdr_module, "decode_data", walked)
        patch.setattr(axdr_module, "decode_data_exact", walked)
        decoded = get.GetResponseNormal.decode(raw)
    assert decoded.result == body
    assert len(decoded.value().value) == 120


# Kaifa MA304 on the Norwegian HAN port writes the push's date-time as a tagged octet-string
# (09 0C + 12 bytes); bytes from toreamun/amshan tests/test_kaifa.py (list 1, 5852 W).
KAIFA_TAGGED_TIME = bytes.fromhex("0f40000000090c07e3020401173416ff800000020106000016dc")


def test_data_notification_reads_a_tagged_date_time_and_writes_it_back() -> None:
    push = notification.DataNotification.decode(KAIFA_TAGGED_TIME)
    assert push.date_time_tagged
    assert push.date_time == CosemDateTime(2019, 2, 4, 1, 23, 52, 22, 0xFF, -0x8000, 0)
    assert push.value().to_python() == [5852]
    assert push.encode() == KAIFA_TAGGED_TIME
    plain = notification.DataNotification(push.long_invoke_id_and_priority, push.date_time, push.body)
    assert plain.encode() == KAIFA_TAGGED_TIME[:5] + KAIFA_TAGGED_TIME[6:]  # the Green Book form: 0C + 12


@pytest.mark.parametrize("cut", [6, 10, 19])
def test_data_notification_with_a_cut_tagged_date_time_is_a_decode_error(cut: int) -> None:
    with pytest.raises(DecodeError):
        notification.DataNotification.decode(KAIFA_TAGGED_TIME[:cut])
