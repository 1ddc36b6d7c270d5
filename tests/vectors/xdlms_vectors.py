"""Byte vectors for the xDLMS service APDUs: (name, source, hex, expected APDU).

Sources are cited as found. "dlms-cosem tests" means the public test suite of u9n/dlms-cosem
(tests/test_xdlms/...); where that suite says it reproduces a Green Book table, the table is
named too. Vectors marked "built here" follow the IEC 62056-5-3 layout and are checked in
tests/protocols/test_xdlms.py against an independent implementation (gurux_dlms or dlms_cosem).
"""

from __future__ import annotations

from protocols.axdr import Data, encode_data
from protocols.cosem_datetime import CosemDateTime
from protocols.obis import ObisCode
from protocols.xdlms.action import (
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResponseWithOptionalData,
)
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
    ServiceClass,
)
from protocols.xdlms.errors import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    ServiceErrorChoice,
)
from protocols.xdlms.gateway import GatewayRequest, GatewayResponse
from protocols.xdlms.gbt import GeneralBlockTransfer
from protocols.xdlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
)
from protocols.xdlms.notification import DataNotification
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor
from protocols.xdlms.set import (
    SetRequestNormal,
    SetRequestWithFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
)

__all__ = ["VECTORS"]

_DLMS_COSEM = "dlms-cosem tests (u9n/dlms-cosem tests/test_xdlms/{})"
C1 = InvokeIdAndPriority(1, ServiceClass.CONFIRMED, Priority.HIGH)
C0 = InvokeIdAndPriority(0, ServiceClass.CONFIRMED, Priority.HIGH)
CLOCK = ObisCode(0, 0, 1, 0, 0, 255)

_RANGE = RangeDescriptor(
    CaptureObjectDefinition(8, CLOCK, 2, 0),
    Data.octet_string(bytes.fromhex("07e10a0107000000 00ffc480".replace(" ", ""))),
    Data.octet_string(bytes.fromhex("07e10a0107010000 00ffc480".replace(" ", ""))),
)

VECTORS: list[tuple[str, str, str, object]] = [
    (
        "get-request-normal register 1.0.1.8.0.255 attribute 2 (invoke 0, unconfirmed bits clear)",
        "Green Book ed. 12, Table 164 (GET service example), as quoted in the tests of a public Rust "
        "dlms_cosem crate (src/get.rs, 'line 1458'); the quote stops before the access-selection byte 00",
        "C0 01 00 0003 0100010800FF 02 00",
        GetRequestNormal(
            InvokeIdAndPriority(0, ServiceClass.UNCONFIRMED, Priority.NORMAL),
            CosemAttributeDescriptor(3, ObisCode(1, 0, 1, 8, 0, 255), 2),
        ),
    ),
    (
        "get-request-normal data 0.0.43.1.0.255 attribute 2",
        _DLMS_COSEM.format("test_get.py"),
        "C001C1 0001 00002B0100FF 02 00",
        GetRequestNormal(C1, CosemAttributeDescriptor(1, ObisCode(0, 0, 43, 1, 0, 255), 2)),
    ),
    (
        "get-request-normal clock attribute 2",
        "built here (IEC 62056-5-3 Get-Request-Normal layout); cross-checked with dlms_cosem",
        "C001C1 0008 0000010000FF 02 00",
        GetRequestNormal(C1, CosemAttributeDescriptor(8, CLOCK, 2)),
    ),
    (
        "get-request-normal profile 1.0.99.1.0.255 buffer, range 2017-10-01 00:00..01:00",
        _DLMS_COSEM.format("test_selective_access.py"),
        "C001C1 0007 0100630100FF 02 01 01"
        "0204 0204 120008 09060000010000FF 0F02 120000"
        "090C07E10A010700000000FFC480 090C07E10A010701000000FFC480 0100",
        GetRequestNormal(
            C1,
            CosemAttributeDescriptor(7, ObisCode(1, 0, 99, 1, 0, 255), 2),
            _RANGE.to_access_selection(),
        ),
    ),
    (
        "get-request-next block 1",
        _DLMS_COSEM.format("test_get.py"),
        "C002C1 00000001",
        GetRequestNext(C1, 1),
    ),
    (
        "get-request-with-list data 0.0.42.0.0.255 and clock",
        _DLMS_COSEM.format("test_get.py"),
        "C003C1 02 0001 00002A0000FF 02 00 0008 0000010000FF 02 00",
        GetRequestWithList(
            C1,
            (
                CosemAttributeDescriptorWithSelection(
                    CosemAttributeDescriptor(1, ObisCode(0, 0, 42, 0, 0, 255), 2)
                ),
                CosemAttributeDescriptorWithSelection(CosemAttributeDescriptor(8, CLOCK, 2)),
            ),
        ),
    ),
    (
        "get-response-normal double-long-unsigned 5009",
        _DLMS_COSEM.format("test_get.py"),
        "C401C1 00 0600001391",
        GetResponseNormal(C1, bytes.fromhex("0600001391")),
    ),
    (
        "get-response-normal hardware-fault",
        _DLMS_COSEM.format("test_get.py"),
        "C401C1 01 01",
        GetResponseNormal(C1, DataAccessResult.HARDWARE_FAULT),
    ),
    (
        "get-response-normal array of two structures",
        "built here (IEC 62056-5-3 Get-Response-Normal layout); cross-checked with dlms_cosem",
        "C401C1 00 0102 0202 1200011100 0202 1200021101",
        GetResponseNormal(C1, bytes.fromhex("0102020212000111000202120002 1101".replace(" ", ""))),
    ),
    (
        "get-response-with-datablock block 1 of a long buffer, not last",
        "built here (IEC 62056-5-3 DataBlock-G layout); block data as in dlms-cosem tests test_get.py",
        "C402C1 00 00000001 00 0C 01820 5A00204090C07E30C13".replace(" ", ""),
        GetResponseWithDatablock(
            C1, False, 1, bytes.fromhex("0182 05A0 0204 090C 07E3 0C13".replace(" ", ""))
        ),
    ),
    (
        "get-response-with-datablock last block 2 with data-block-number-invalid",
        "built here (IEC 62056-5-3 DataBlock-G layout)",
        "C402C1 01 00000002 01 13",
        GetResponseWithDatablock(C1, True, 2, DataAccessResult.DATA_BLOCK_NUMBER_INVALID),
    ),
    (
        "set-request-normal clock attribute 2",
        _DLMS_COSEM.format("test_set.py"),
        "C101C1 0008 0000010000FF 02 00 090C07E50118FF0E303950FFC400",
        SetRequestNormal(
            C1, CosemAttributeDescriptor(8, CLOCK, 2), bytes.fromhex("090C07E50118FF0E303950FFC400")
        ),
    ),
    (
        "set-request-with-first-datablock 0.0.128.0.0.255 attribute 2",
        "Green Book Table 137 'Writing the value of a single attribute with block transfer', "
        + "as reproduced in "
        + _DLMS_COSEM.format("test_set.py"),
        "C102C1 0001 0000800000FF 02 00 00 00000001 15 093201020304050607080910111213141516171819",
        SetRequestWithFirstDatablock(
            C1,
            CosemAttributeDescriptor(1, ObisCode(0, 0, 128, 0, 0, 255), 2),
            DataBlockSA(False, 1, bytes.fromhex("093201020304050607080910111213141516171819")),
        ),
    ),
    (
        "set-response-normal success",
        _DLMS_COSEM.format("test_set.py"),
        "C501C1 00",
        SetResponseNormal(C1, DataAccessResult.SUCCESS),
    ),
    (
        "set-response-datablock block 1",
        _DLMS_COSEM.format("test_set.py"),
        "C502C1 00000001",
        SetResponseDatablock(C1, 1),
    ),
    (
        "set-response-last-datablock success block 2",
        _DLMS_COSEM.format("test_set.py"),
        "C503C1 00 00000002",
        SetResponseLastDatablock(C1, DataAccessResult.SUCCESS, 2),
    ),
    (
        "action-request-normal association LN reply_to_HLS_authentication",
        _DLMS_COSEM.format("test_action.py"),
        "C301C0 000F 0000280000FF 01 01 0911 10 00001A90E6D2221FA2FD85EED61ACC22",
        ActionRequestNormal(
            C0,
            CosemMethodDescriptor(15, ObisCode(0, 0, 40, 0, 0, 255), 1),
            bytes.fromhex("0911 10 00001A90E6D2221FA2FD85EED61ACC22".replace(" ", "")),
        ),
    ),
    (
        "action-request-normal without parameters",
        _DLMS_COSEM.format("test_action.py"),
        "C301C0 000F 0000280000FF 01 00",
        ActionRequestNormal(C0, CosemMethodDescriptor(15, ObisCode(0, 0, 40, 0, 0, 255), 1)),
    ),
    (
        "action-request-normal disconnect control remote_disconnect",
        "built here: Blue Book disconnect control (class 70) method 1 remote_disconnect(integer 0); "
        + "cross-checked with dlms_cosem",
        "C301C1 0046 0000600300FF 01 01 0F00",
        ActionRequestNormal(
            C1, CosemMethodDescriptor(70, ObisCode(0, 0, 96, 3, 0, 255), 1), encode_data(Data.integer(0))
        ),
    ),
    (
        "action-response-normal success",
        _DLMS_COSEM.format("test_action.py"),
        "C701C0 00 00",
        ActionResponseNormal(C0, ActionResponseWithOptionalData(ActionResult.SUCCESS)),
    ),
    (
        "action-response-normal success with return data",
        _DLMS_COSEM.format("test_action.py"),
        "C701C0 00 01 00 0911 10 00001AFDE8857B728A3499106AA665D1",
        ActionResponseNormal(
            C0,
            ActionResponseWithOptionalData(
                ActionResult.SUCCESS,
                bytes.fromhex("091110 00001AFDE8857B728A3499106AA665D1".replace(" ", "")),
            ),
        ),
    ),
    (
        "action-response-normal success with data-access-result other-reason",
        _DLMS_COSEM.format("test_action.py"),
        "C701C0 00 01 01 FA",
        ActionResponseNormal(
            C0, ActionResponseWithOptionalData(ActionResult.SUCCESS, DataAccessResult.OTHER_REASON)
        ),
    ),
    (
        "exception-response service-not-allowed, invocation-counter-error 42",
        "built here (IEC 62056-5-3 ExceptionResponse layout); cross-checked with dlms_cosem",
        "D8 01 06 0000002A",
        ExceptionResponse(
            ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR, 42
        ),
    ),
    (
        "exception-response service-unknown, service-not-supported",
        "built here (IEC 62056-5-3 ExceptionResponse layout); cross-checked with dlms_cosem",
        "D8 02 02",
        ExceptionResponse(ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.SERVICE_NOT_SUPPORTED),
    ),
    (
        "confirmed-service-error initiate-error, initiate, dlms-version-too-low",
        "built here (Green Book ConfirmedServiceError/ServiceError tables); cross-checked with dlms_cosem",
        "0E 01 06 01",
        ConfirmedServiceError(ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorChoice.INITIATE, 1),
    ),
    (
        "general-block-transfer first block of a window of 3, streaming",
        "built here (IEC 62056-5-3 General-Block-Transfer layout)",
        "E0 43 0001 0000 05 C001C10008",
        GeneralBlockTransfer(False, True, 3, 1, 0, bytes.fromhex("C001C10008")),
    ),
    (
        "general-block-transfer acknowledgement of block 2, window 5",
        "built here (IEC 62056-5-3 General-Block-Transfer layout)",
        "E0 85 0001 0002 00",
        GeneralBlockTransfer(True, False, 5, 1, 2, b""),
    ),
    (
        "data-notification without date-time, structure body",
        _DLMS_COSEM.format("test_data_notification.py"),
        "0F 000001DB 00 0922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100",
        DataNotification(
            LongInvokeIdAndPriority(0x1DB, False, False, ServiceClass.UNCONFIRMED, Priority.NORMAL),
            None,
            bytes.fromhex("0922125A8591360000000049000000110000000A5A8513D014800000000D0000000A0100"),
        ),
    ),
    (
        "data-notification with date-time, double-long-unsigned body",
        "built here (IEC 62056-5-3 Data-Notification layout); cross-checked with dlms_cosem",
        "0F 40000005 0C 07E5011805 0C1E00 00 FF88 00 06 000004D2",
        DataNotification(
            LongInvokeIdAndPriority(5, False, False, ServiceClass.CONFIRMED, Priority.NORMAL),
            CosemDateTime(2021, 1, 24, 5, 12, 30, 0, 0, -120, 0),
            bytes.fromhex("06000004D2"),
        ),
    ),
    (
        "gateway-request network 0, address 12345678, carrying get-request-normal clock",
        "built here; layout as Gurux GXDLMS writes GATEWAY_REQUEST",
        "E6 00 04 12345678 C001C1 0008 0000010000FF 02 00",
        GatewayRequest(0, bytes.fromhex("12345678"), bytes.fromhex("C001C100080000010000FF0200")),
    ),
    (
        "gateway-response network 1, address 0A0B, carrying set-response-normal",
        "built here; layout as Gurux GXDLMS reads GATEWAY_RESPONSE",
        "E7 01 02 0A0B C501C100",
        GatewayResponse(1, bytes.fromhex("0A0B"), bytes.fromhex("C501C100")),
    ),
]
