"""One entry point that decodes any xDLMS service APDU handled in this package, by its tag."""

from __future__ import annotations

from collections.abc import Callable

from protocols.errors import DecodeError
from protocols.xdlms import sn
from protocols.xdlms.action import (
    ActionRequest,
    ActionResponse,
    decode_action_request,
    decode_action_response,
)
from protocols.xdlms.common import XdlmsTag
from protocols.xdlms.errors import (
    ConfirmedServiceError,
    ExceptionResponse,
    decode_confirmed_service_error,
    decode_exception_response,
)
from protocols.xdlms.gateway import (
    GatewayRequest,
    GatewayResponse,
    decode_gateway_request,
    decode_gateway_response,
)
from protocols.xdlms.gbt import GeneralBlockTransfer, decode_general_block_transfer
from protocols.xdlms.get import GetRequest, GetResponse, decode_get_request, decode_get_response
from protocols.xdlms.notification import (
    DataNotification,
    EventNotificationRequest,
    decode_data_notification,
    decode_event_notification_request,
)
from protocols.xdlms.set import SetRequest, SetResponse, decode_set_request, decode_set_response
from protocols.xdlms.sn import ReadRequest, ReadResponse, WriteRequest, WriteResponse

__all__ = ["XdlmsApdu", "decode_xdlms_apdu"]

XdlmsApdu = (
    GetRequest
    | GetResponse
    | SetRequest
    | SetResponse
    | ActionRequest
    | ActionResponse
    | ExceptionResponse
    | ConfirmedServiceError
    | GeneralBlockTransfer
    | DataNotification
    | EventNotificationRequest
    | GatewayRequest
    | GatewayResponse
    | ReadRequest
    | ReadResponse
    | WriteRequest
    | WriteResponse
)

_DECODERS: dict[int, Callable[[bytes], XdlmsApdu]] = {
    XdlmsTag.GET_REQUEST: decode_get_request,
    XdlmsTag.GET_RESPONSE: decode_get_response,
    XdlmsTag.SET_REQUEST: decode_set_request,
    XdlmsTag.SET_RESPONSE: decode_set_response,
    XdlmsTag.ACTION_REQUEST: decode_action_request,
    XdlmsTag.ACTION_RESPONSE: decode_action_response,
    XdlmsTag.EXCEPTION_RESPONSE: decode_exception_response,
    XdlmsTag.CONFIRMED_SERVICE_ERROR: decode_confirmed_service_error,
    XdlmsTag.GENERAL_BLOCK_TRANSFER: decode_general_block_transfer,
    XdlmsTag.DATA_NOTIFICATION: decode_data_notification,
    XdlmsTag.EVENT_NOTIFICATION_REQUEST: decode_event_notification_request,
    XdlmsTag.GATEWAY_REQUEST: decode_gateway_request,
    XdlmsTag.GATEWAY_RESPONSE: decode_gateway_response,
    # Short-name referencing (older meters): Read and Write.
    sn.READ_REQUEST: ReadRequest.decode,
    sn.READ_RESPONSE: ReadResponse.decode,
    sn.WRITE_REQUEST: WriteRequest.decode,
    sn.WRITE_RESPONSE: WriteResponse.decode,
}


def decode_xdlms_apdu(buf: bytes) -> XdlmsApdu:
    """Decode one whole xDLMS service APDU; ``DecodeError`` for unknown tags or bad bytes.

    ACSE (AARQ, AARE, RLRQ, RLRE) and ciphered APDUs are decoded elsewhere.
    """
    if not isinstance(buf, bytes | bytearray | memoryview):
        raise DecodeError(f"an APDU is bytes, got {type(buf).__name__}")
    if not buf:
        raise DecodeError("empty APDU", 0)
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise DecodeError(f"no xDLMS service APDU has tag 0x{buf[0]:02x}", 0)
    return decoder(bytes(buf))
